"""User-facing recommenders: DataFrames with the user's ids in and out.

One module per model; :mod:`~aerec.recommend.base` holds the contract (:class:`Recommender`),
:mod:`~aerec.recommend.keras_base` what the Keras models share, :mod:`~aerec.recommend.catalogue`
the items added from features, :mod:`~aerec.recommend.content` the content model that codes them.
:class:`AutoRec` predicts ratings rather than ranking items, but reads the same interaction data.
"""
from .autorec import AutoRec
from .base import Recommender, TopK, ValidationData, top_k  # noqa: F401 - ValidationData, top_k: for tests and models
from .cdae import CDAE
from .content import ContentModel
from .ease import EASE
from .elsa import ELSA
from .itemknn import ItemKNN
from .keras_base import KerasRecommender
from .multvae import MultDAE, MultVAE
from .popularity import Popularity
from .recvae import RecVAE
from .sequential import SequentialDAE

__all__ = ["Recommender", "KerasRecommender", "TopK", "EASE", "ELSA", "ItemKNN", "MultVAE", "MultDAE", "CDAE",
           "RecVAE", "SequentialDAE", "Popularity", "ContentModel", "AutoRec"]
