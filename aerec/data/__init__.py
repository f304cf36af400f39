"""The data layer: the user's ids, checked interaction matrices, splits. No Keras here."""
from .idmap import IdMap
from .ids import coerce_ids
from .interactions import Interactions, check_columns
from .io import read_table
from .splits import strong_split, weak_split

__all__ = ["IdMap", "coerce_ids", "Interactions", "check_columns", "read_table", "weak_split", "strong_split"]
