"""The data layer: the user's ids, checked interaction matrices, splits. No Keras here."""
from .idmap import IdMap
from .interactions import Interactions, check_columns
from .splits import strong_split, weak_split

__all__ = ["IdMap", "Interactions", "check_columns", "weak_split", "strong_split"]
