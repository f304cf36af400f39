"""User-facing recommenders: DataFrames with the user's ids in and out."""
from .base import Recommender, ValidationData, top_k
from .ease import EASE
from .popularity import Popularity

__all__ = ["Recommender", "ValidationData", "top_k", "EASE", "Popularity"]
