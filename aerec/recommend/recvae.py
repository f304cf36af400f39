"""`RecVAE`: Shenbin et al. (2020) behind the recommender contract."""
from __future__ import annotations

from ..base import register
from ..params import Interval
from .keras_base import KerasRecommender

__all__ = ["RecVAE"]


@register
class RecVAE(KerasRecommender):
    """RecVAE: a Mult-VAE with a composite prior, a user-specific KL weight and alternating updates
    (Shenbin et al., 2020).

    The encoder (five densely connected swish layers with layer normalisation over the
    L2-normalised, dropped-out row) gives a Gaussian code; a linear decoder gives one logit per
    item under a multinomial likelihood. The KL term of user ``u`` is weighted by ``gamma * |x_u|``
    and taken against a mixture of ``N(0, I)``, a wide Gaussian and the posterior of last epoch's
    encoder. Each epoch trains the encoder for ``encoder_epochs`` passes, then the decoder for
    ``decoder_epochs`` passes; with ``valid``, the epoch with the best validation NDCG@100 is kept.

    The user code is the code's mean ``mu_u`` and the item code the output layer's kernel column
    plus its bias, so ``h_u · W_i + b_i`` is the item's logit. Users unseen at fit time are folded
    in by encoding their history: nothing is retrained.

    Parameters
    ----------
    hidden_dim : int, default 600
        Width of the encoder's hidden layers.
    code_dim : int, default 200
        Width of the code.
    dropout : float, default 0.5
        Input dropout in the encoder's passes.
    gamma : float, default 0.02
        The KL weight of user ``u`` is ``gamma * |x_u|``. The paper's 0.005 (for MovieLens-20M)
        regularised too little on MovieLens-100K: on the protocol A1 validation split (seed 0) 0.02
        scored 0.333 NDCG@100 against 0.319 for 0.005 and 0.322 for 0.05.
    encoder_epochs, decoder_epochs : int, default 3 and 1
        Passes over the users per epoch for the encoder, then for the decoder.
    learning_rate : float, default 1e-3
        Step size of the encoder's and the decoder's Adam (the paper's 5e-4 reached the same
        validation NDCG@100 in about 1.5 times as many epochs).
    {training_parameters}

    Attributes
    ----------
    network_ : aerec.models.recvae.RecVAENetwork
        The trained Keras model.
    history_ : dict of lists
        Per epoch: ``loss``, ``nll``, ``kl``, ``val_ndcg@100`` and ``valid_seconds`` (with ``valid``), ``train_seconds``;
        and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = RecVAE(hidden_dim=8, code_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    def __init__(self, hidden_dim: int = 600, code_dim: int = 200, dropout: float = 0.5, gamma: float = 0.02,
                 encoder_epochs: int = 3, decoder_epochs: int = 1, learning_rate: float = 1e-3, epochs: int = 200,
                 batch_size: int = 500, patience: int | None = 30, seed: int = 0, verbose: int = 0):
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.dropout = dropout
        self.gamma = gamma
        self.encoder_epochs = encoder_epochs
        self.decoder_epochs = decoder_epochs
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    _parameter_constraints = {
        **KerasRecommender._parameter_constraints,
        "hidden_dim": [Interval("int", 1, None)],
        "code_dim": [Interval("int", 1, None)],
        "gamma": [Interval("real", 0, None)],
        "encoder_epochs": [Interval("int", 1, None)],
        "decoder_epochs": [Interval("int", 1, None)],
    }

    @classmethod
    def network_class(cls):
        from ..models.recvae import RecVAENetwork

        return RecVAENetwork

    #: two optimizers in a custom train_step: aerec.distributed.fit's loop does not run it
    _trains_across_workers = False

    def _build_network(self, n_users: int, n_items: int):
        network = self.network_class()(n_items, hidden_dim=self.hidden_dim, latent_dim=self.code_dim, dropout=self.dropout,
                                gamma=self.gamma, encoder_epochs=self.encoder_epochs,
                                decoder_epochs=self.decoder_epochs, learning_rate=self.learning_rate, seed=self.seed)
        network.build((None, n_items))
        return network

    def _steps_per_epoch(self, batches_per_pass: int) -> int:
        return self.network_.cycle_steps(batches_per_pass)

    def _callbacks(self, steps_per_epoch: int) -> list:
        from ..models.recvae import UpdatePrior

        self.network_.build_optimizers()
        return [UpdatePrior()]
