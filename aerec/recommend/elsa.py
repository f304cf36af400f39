"""`ELSA`: a shallow low-rank autoencoder for catalogues too large for EASE, behind the recommender contract."""
from __future__ import annotations

import numpy as np

from ..base import register
from ..params import Interval
from .keras_base import KerasRecommender, _numpy

__all__ = ["ELSA"]


@register
class ELSA(KerasRecommender):
    """Scalable Linear Shallow Autoencoder (Vančura et al., RecSys 2022): EASE with a low-rank item matrix.

    EASE learns a dense item x item matrix ``B`` (``n_items²`` floats: 1.6 GB at 20,000 items,
    40 GB at 100,000). ELSA learns ``B = A Aᵀ - I`` with ``A`` of shape ``(n_items, code_dim)``
    and unit-length rows, by Adam on mini-batches of users (the loss compares the normalised
    prediction ``x A Aᵀ - x`` with the normalised row ``x``). Memory grows with ``n_items x
    code_dim``, so it fits where :class:`~aerec.EASE` is refused.

    The user code is ``x A`` and item i's code is ``a_i`` (bias 0): ``score = h_u · a_i``. Like
    EASE it has no user parameters, so fold-in of a new user's history is exact: the same
    computation as for a training user. With ``exclude_seen=False`` a seen item's score also
    holds its own ``|a_i|² = 1``, which the training objective subtracts.

    The defaults were chosen on the validation split of MovieLens-100K protocol A1 (seed 0), where
    validation NDCG@100 peaks after 7 epochs of 256 users and then falls as ``A`` overfits: give
    ``valid`` to stop at the best epoch on other data (the authors train 5 epochs on MovieLens-20M).

    Parameters
    ----------
    code_dim : int, default 256
        The rank of the item matrix: wider is closer to EASE and costs ``n_items x code_dim`` floats.
    learning_rate : float, default 0.01
        Adam's step size.
    {training_parameters}

    Attributes
    ----------
    network_ : aerec.models.elsa.ShallowLowRankAutoencoder
        The trained Keras model.
    history_ : dict of lists
        Per epoch: ``loss``, ``val_ndcg@100`` and ``valid_seconds`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = ELSA(code_dim=2, epochs=5).fit(df)
    >>> len(model.recommend([1], k=1))
    1
    """

    _parameter_constraints = {
        **{name: rule for name, rule in KerasRecommender._parameter_constraints.items() if name != "dropout"},
        "code_dim": [Interval("int", 1, None)],
    }

    def __init__(self, code_dim: int = 256, learning_rate: float = 0.01, epochs: int = 8, batch_size: int = 256,
                 patience: int | None = 5, seed: int = 0, verbose: int = 0):
        self.code_dim = code_dim
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    #: training reads the nonzeros only: the loss is computed from the codes (see the network's module)
    _sparse_batches = True

    @classmethod
    def network_class(cls):
        from ..models.elsa import ShallowLowRankAutoencoder

        return ShallowLowRankAutoencoder

    def _build_network(self, n_users: int, n_items: int):
        network = self.network_class()(n_items, code_dim=self.code_dim, seed=self.seed)
        network.build((None, n_items))
        return network

    def _item_vectors(self):
        w = self.network_._numpy_weights()
        items = w["items"] if w is not None else _numpy(self.network_.item_vectors())
        return items, np.zeros(len(items), dtype=np.float32)
