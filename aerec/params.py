"""Declarative hyperparameter checks, one for every estimator (the habit of scikit-learn's
``_parameter_constraints``).

An estimator class states what each hyperparameter may be::

    _parameter_constraints = {
        "dropout": [Interval("real", 0, 1, closed="left")],
        "patience": [Interval("int", 1, None), None],
        "kind": [Options("item", "user", "both")],
    }

and :meth:`aerec.base.BaseEstimator._validate_params` (called first thing in ``fit``) checks them all;
a value is valid when it satisfies any constraint in its list. Checks that relate two parameters
stay in the estimator's ``_check_param_relations``. Every failure is an
:class:`~aerec.exceptions.InvalidParameterError` worded the same way: the parameter, what it must
be, what it got.
"""
from __future__ import annotations

import math
import numbers

from .exceptions import InvalidParameterError

__all__ = ["Interval", "Options", "Widths", "Boolean", "Pair", "check_params"]


class Interval:
    """A number of ``kind`` ``"int"`` or ``"real"`` between ``low`` and ``high`` (None: unbounded).

    ``closed`` says which ends belong: ``"both"`` (default), ``"left"``, ``"right"`` or ``"neither"``.
    """

    def __init__(self, kind: str, low=None, high=None, closed: str = "both"):
        if kind not in ("int", "real") or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"bad Interval({kind!r}, closed={closed!r})")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        what = "an integer" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{what} in {left}{self.low}, {self.high}{right}"
        if self.low is not None:
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.low}"
        if self.high is not None:
            return f"{what} {'<=' if self.closed in ('both', 'right') else '<'} {self.high}"
        return what


class Options:
    """One of the given values."""

    def __init__(self, *values):
        self.values = tuple(values)

    def accepts(self, value) -> bool:
        return any(value == v and type(value) is type(v) or (value is v) for v in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class Widths:
    """Layer widths: one integer ``>= low`` or a non-empty tuple/list of them."""

    def __init__(self, low: int = 1):
        self.low = low
        self._one = Interval("int", low, None)

    def accepts(self, value) -> bool:
        if self._one.accepts(value):
            return True
        return isinstance(value, (tuple, list)) and len(value) > 0 and all(self._one.accepts(v) for v in value)

    def __str__(self) -> str:
        return f"an integer >= {self.low} or a tuple of them"


class Boolean:
    """``True`` or ``False``."""

    def accepts(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "True or False"


class Pair:
    """A pair ``(low, high)`` of finite numbers with ``low < high``."""

    def accepts(self, value) -> bool:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return False
        number = Interval("real")
        return number.accepts(value[0]) and number.accepts(value[1]) and value[0] < value[1]

    def __str__(self) -> str:
        return "a pair (low, high) of numbers with low < high"


def _describe(constraint) -> str:
    return "None" if constraint is None else str(constraint)


def check_params(estimator, constraints: dict) -> None:
    """Raise :class:`~aerec.exceptions.InvalidParameterError` for the first hyperparameter of
    ``estimator`` that satisfies none of its ``constraints``."""
    for name, allowed in constraints.items():
        value = getattr(estimator, name)
        if any(value is None if c is None else c.accepts(value) for c in allowed):
            continue
        expected = " or ".join(_describe(c) for c in allowed)
        raise InvalidParameterError(f"{type(estimator).__name__}: {name} must be {expected}; got {value!r}")
