"""aerec: autoencoders learn codes of users, items, images and table rows; a FAISS index over the
codes serves recommendations and similarity search.

Examples
--------
>>> import aerec
>>> ml = aerec.datasets.movielens_100k()
>>> model = aerec.EASE().fit(ml.ratings, threshold=4, rating="rating")
>>> model.recommend([1], k=3).columns.tolist()
['user', 'item', 'score', 'rank']
"""
from importlib.metadata import PackageNotFoundError, version

from . import datasets, evaluate, exceptions, features, metrics, recommend
from .base import clone
from .bundle import load
from .data import IdMap, Interactions
from .evaluate import tune
from .images import ImageSearch
from .index import EmbeddingIndex
from .recommend import *  # noqa: F401,F403 - every model exported by aerec.recommend is aerec.<Model>
from .table import TableAutoencoder

try:
    __version__ = version("aerec")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    *recommend.__all__, "EmbeddingIndex", "ImageSearch", "TableAutoencoder", "IdMap", "Interactions", "load",
    "clone", "datasets", "evaluate", "exceptions", "features", "metrics", "tune", "__version__",
]
