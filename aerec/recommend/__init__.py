"""User-facing recommenders: DataFrames with the user's ids in and out."""
from .base import Recommender, ValidationData, top_k
from .cdae import CDAE
from .content import ContentModel
from .ease import EASE
from .multvae import MultDAE, MultVAE
from .popularity import Popularity
from .recvae import RecVAE

__all__ = ["Recommender", "ValidationData", "top_k", "EASE", "MultVAE", "MultDAE", "CDAE", "RecVAE", "Popularity", "ContentModel"]
