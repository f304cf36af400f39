"""The estimator base: scikit-learn style parameters checked from one declaration, one persistence
path, the registry of saveable classes, `clone`.

Every public estimator of aerec (recommenders, :class:`~aerec.ImageSearch`, :class:`~aerec.AutoRec`,
:class:`~aerec.TableAutoencoder`, :class:`~aerec.EmbeddingIndex`, :class:`~aerec.ContentModel`)
derives from :class:`BaseEstimator` and is decorated with :func:`register`, which is what makes
:func:`aerec.load` able to read it back.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar

from .exceptions import NotFittedError
from .params import check_params

__all__ = ["BaseEstimator", "register", "registered", "estimator_classes", "clone"]

_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make an estimator loadable by :func:`aerec.load` under its class name.

    Loading looks classes up here and nowhere else, so a bundle can never name arbitrary code.
    """
    _REGISTRY[cls.__name__] = cls
    return cls


def registered(name: str) -> type:
    """The estimator class registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no aerec estimator is called {name!r}; known: {sorted(_REGISTRY)}") from None


def estimator_classes(base: type | None = None, served_as: str | None = None) -> dict[str, type]:
    """The registered estimator classes by name: all of them, those derived from ``base``, or those
    that serve as ``served_as`` (see :attr:`BaseEstimator.served_as`)."""
    return {name: cls for name, cls in sorted(_REGISTRY.items())
            if (base is None or issubclass(cls, base)) and (served_as is None or cls.served_as == served_as)}


class BaseEstimator:
    """``__init__`` stores keyword hyperparameters unchanged; ``fit`` validates them and learns
    state whose names end in ``_``; ``get_params`` / ``set_params`` make :func:`clone` and grid search work.

    What a subclass declares
    ------------------------
    ``_parameter_constraints``
        ``{name: [constraint, ...]}`` from :mod:`aerec.params`; :meth:`_validate_params` checks them
        all at the start of ``fit``. Checks that tie two parameters together go in
        :meth:`_check_param_relations`.
    ``served_as``
        The kind of bundle :func:`aerec.server.create_app` serves for this class
        (``"recommender"``, ``"image search"``, ``"rating model"``), or None.
    ``_save_to(directory) -> dict`` and ``_load_from(directory, meta) -> estimator``
        The persistence protocol: write the fitted state as files into a fresh directory and
        return what ``meta.json`` should keep besides the parameters; read it back. :meth:`save`
        and :func:`aerec.load` wrap them with the atomic write and the checksums of
        :mod:`aerec.bundle`; a nested part (an index, a content model) is saved with
        :func:`aerec.bundle.save_part`.
    """

    _parameter_constraints: ClassVar[dict] = {}
    served_as: ClassVar[str | None] = None

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self, deep: bool = False) -> dict:
        """The hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "BaseEstimator":
        """Change hyperparameters (takes effect at the next ``fit``)."""
        from .exceptions import InvalidParameterError

        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(f"{type(self).__name__} has no parameter {name!r}; "
                                            f"its parameters are {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) is not v and defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    # --- checks ------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        """Check every hyperparameter against ``_parameter_constraints``, then their relations."""
        check_params(self, self._parameter_constraints)
        self._check_param_relations()

    def _check_param_relations(self) -> None:
        """Checks that involve several hyperparameters (raise ``InvalidParameterError``)."""

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save to the bundle directory ``path``; :func:`aerec.load` reads it back.

        The bundle is written into a temporary directory beside ``path`` and renamed into place,
        so a save that fails or is killed leaves any previous bundle at ``path`` as it was (see
        :func:`aerec.bundle.save`).
        """
        from .bundle import save

        self._check_fitted()
        save(self, path)

    def _save_to(self, directory: Path) -> dict:
        """Write the fitted state into ``directory`` (new and empty); return the JSON-able extras for ``meta.json``."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    @classmethod
    def _load_from(cls, directory: Path, meta: dict) -> "BaseEstimator":
        """Read back what :meth:`_save_to` wrote; ``meta`` is the verified ``meta.json`` (``meta["params"]``
        holds the hyperparameters, tuples restored)."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded")


def clone(estimator: BaseEstimator) -> BaseEstimator:
    """A new, unfitted estimator with the same hyperparameters."""
    return type(estimator)(**estimator.get_params())
