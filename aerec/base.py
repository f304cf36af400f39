"""The estimator base: scikit-learn style parameters, the registry of saveable classes, `clone`."""
from __future__ import annotations

import inspect

from .exceptions import NotFittedError

__all__ = ["BaseEstimator", "register", "registered", "clone"]

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


class BaseEstimator:
    """``__init__`` stores keyword hyperparameters unchanged; ``fit`` validates them and learns
    state whose names end in ``_``; ``get_params`` / ``set_params`` make :func:`clone` and grid search work."""

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
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; its parameters are {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) is not v and defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")


def clone(estimator: BaseEstimator) -> BaseEstimator:
    """A new, unfitted estimator with the same hyperparameters."""
    return type(estimator)(**estimator.get_params())
