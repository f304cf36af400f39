"""`CDAE`: the collaborative denoising autoencoder of Wu et al. (2016) behind the recommender contract."""
from __future__ import annotations

from ..base import register
from ..params import Interval
from .keras_base import KerasRecommender

__all__ = ["CDAE"]


@register
class CDAE(KerasRecommender):
    """Collaborative Denoising Autoencoder for implicit feedback (Wu et al., 2016).

    A user's interaction row, corrupted by dropout, is encoded to ``h_u = sigmoid(W' x_u + V_u + b)``
    where ``V_u`` is a learned offset of that user; the decoder gives one logit per item, trained
    with the logistic loss over all items. Training, early stopping on validation NDCG@100,
    codes (``h_u · W_i + b_i`` is the item's logit) and saving are as in :class:`MultVAE`.

    The defaults were chosen on the validation split of MovieLens-100K protocol A1 (seed 0).

    Users unseen at fit time are folded in without an offset (``V_u = 0``), so a training user's
    own history given to :meth:`recommend_for_history` does not give exactly :meth:`recommend`'s list.

    Parameters
    ----------
    code_dim : int, default 200
        Width of the code ``h_u``.
    dropout : float, default 0.7
        Corruption rate of the input rows during training.
    l2 : float, default 1e-4
        L2 penalty ``l2 * sum(w ** 2)`` on the kernels and the user offsets.
    learning_rate : float, default 1e-2
        Adam's step size.
    {training_parameters}

    Attributes
    ----------
    network_ : aerec.models.cdae.CollaborativeDenoisingAutoencoder
        The trained Keras model.
    history_ : dict of lists
        Per epoch: ``loss``, ``val_ndcg@100`` and ``valid_seconds`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = CDAE(code_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    with_user_index = True
    _parameter_constraints = {
        **KerasRecommender._parameter_constraints,
        "code_dim": [Interval("int", 1, None)],
        "l2": [Interval("real", 0, None)],
    }

    def __init__(self, code_dim: int = 200, dropout: float = 0.7, l2: float = 1e-4,
                 learning_rate: float = 1e-2, epochs: int = 200, batch_size: int = 500, patience: int | None = 50,
                 seed: int = 0, verbose: int = 0):
        self.code_dim = code_dim
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    @classmethod
    def network_class(cls):
        from ..models.cdae import CollaborativeDenoisingAutoencoder

        return CollaborativeDenoisingAutoencoder

    def _build_network(self, n_users: int, n_items: int):
        network = self.network_class()(n_items, n_users, hidden_dim=self.code_dim, dropout=self.dropout,
                                       weight_decay=self.l2, seed=self.seed)
        network.build()
        return network
