"""`MultVAE` and `MultDAE`: the multinomial-likelihood autoencoders of Liang et al. (2018) behind the recommender contract."""
from __future__ import annotations

import numpy as np

from ..base import register
from ..params import Interval, Options
from .keras_base import KerasRecommender

__all__ = ["MultVAE", "MultDAE"]

#: the docstring of ``sampled_softmax``, shared by both models
_SAMPLED_SOFTMAX = """sampled_softmax : "auto", int or None, default "auto"
        Train the softmax over items on the user's own items and this many negatives per batch,
        drawn ∝ popularity ** 0.75 with the importance-sampling correction (see
        :func:`aerec.models.vae.sampled_multinomial_nll`); the input layer then reads only each
        row's nonzeros. None trains the full softmax. ``"auto"`` decides from the data's shape:
        {negatives:,} negatives when the catalogue has at least {threshold:,} items and a batch
        of users touches at most half of them (the distinct items of ``batch_size`` random
        training users, plus the negatives), else the full softmax. The sampled step's cost
        follows the items a batch touches, the full one's the whole catalogue, so the rule
        samples where that saves time: a long tail of sparse users, or a catalogue much wider
        than a batch's items. Scores, codes and fold-in are the same full-catalogue logits
        either way."""


class _MultinomialRecommender(KerasRecommender):
    """Mult-VAE and Mult-DAE: one network, variational or not."""

    _variational = True
    _parameter_constraints = {
        **KerasRecommender._parameter_constraints,
        "hidden_dim": [Interval("int", 0, None)],
        "code_dim": [Interval("int", 1, None)],
        "l2": [Interval("real", 0, None)],
        "sampled_softmax": [Options("auto"), Interval("int", 1, None), None],
    }
    #: ``sampled_softmax="auto"`` samples from this many items up, with this many negatives, when a batch
    #: touches at most ``_sampled_touched_share`` of the items. Measured on this project's 2-core test
    #: machine: a Mult-VAE update of 500 users of 70 interactions (``benchmarks/softmax_bench.py``) touches
    #: 10,900 of 20,000 items and takes about as long either way (the full softmax's products run at the
    #: machine's matmul rate, the sampled one's gathers at its memory rate); 13,700 of 40,000: 1.7x less
    #: sampled; 16,300 of 83,000: 3.5x less. Users of 7 interactions over 25,000 items
    #: (``benchmarks/sparse_bench.py``, games) touch about 5,000 per batch: epochs 5.7x shorter sampled.
    _sampled_from_items = 10_000
    _sampled_touched_share = 0.5
    _auto_negatives = 2_048

    def __init_subclass__(cls, **kwargs):
        if cls.__doc__ and "{sampled_softmax}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{sampled_softmax}", _SAMPLED_SOFTMAX.format(
                threshold=cls._sampled_from_items, negatives=cls._auto_negatives))
        super().__init_subclass__(**kwargs)

    def _optimizer(self):
        if not getattr(self, "_sparse_batches", False):
            return super()._optimizer()
        from ..models.optimizers import LazyAdam  # the item matrices' gradients are row-sparse

        return LazyAdam(learning_rate=self.learning_rate)

    def sampled_negatives(self, n_items: int, touched: int | None = None) -> int:
        """The negatives per batch that ``fit`` uses for ``n_items`` items (0: the full softmax), when a
        batch of users touches ``touched`` distinct items (None: as many as the catalogue)."""
        if self.sampled_softmax == "auto":
            if n_items < self._sampled_from_items:
                return 0
            touched = n_items if touched is None else touched + self._auto_negatives
            return self._auto_negatives if touched <= self._sampled_touched_share * n_items else 0
        return min(int(self.sampled_softmax or 0), n_items)

    def _items_touched_per_batch(self, matrix) -> int:
        """The distinct items of ``batch_size`` training users drawn with the seed (the mean of 3 draws)."""
        rng = np.random.default_rng(self.seed)
        n_users = matrix.shape[0]
        size = min(self.batch_size, n_users)
        return int(np.mean([np.unique(matrix[rng.choice(n_users, size, replace=False)].indices).size
                            for _ in range(3)]))

    def _negatives(self, n_items: int) -> int:
        touched = None
        if self.sampled_softmax == "auto" and n_items >= self._sampled_from_items:
            touched = self._items_touched_per_batch(self.interactions_.matrix)
        return self.sampled_negatives(n_items, touched)

    def _trained_share(self, n_items: int) -> float:
        negatives = int(getattr(self.network_, "sampled_softmax", 0) or 0)
        if not negatives:
            return 1.0
        touched = self._items_touched_per_batch(self.interactions_.matrix)  # the same seeded draw as _negatives
        return min(1.0, self._sampled_step_cost * (touched + negatives) / n_items)

    #: what a sampled-softmax step costs against the full softmax over its share of the columns: the
    #: encoder reads sparse rows and the log-softmax runs over the sampled columns only, while a check
    #: still ranks the whole catalogue. Measured on the games set of benchmarks/sparse_bench.py (21,640
    #: items, 2,048 negatives): a check of 5,000 users cost 1.7 epochs, where the share alone predicted 1.05
    #: (through Keras; checks through the NumPy path since cost about 0.8 epochs: spaced more than needed)
    _sampled_step_cost = 0.5

    @classmethod
    def network_class(cls):
        from ..models.vae import MultinomialAutoencoder

        return MultinomialAutoencoder

    def _build_network(self, n_users: int, n_items: int):
        network = self.network_class()(
            n_items, hidden_dim=self.hidden_dim, latent_dim=self.code_dim, variational=self._variational,
            dropout=self.dropout, weight_decay=self.l2, sampled_softmax=self._negatives(n_items), seed=self.seed)
        network.build((None, n_items))
        self._sparse_batches = bool(network.sampled_softmax)  # the sampled loss reads only the nonzeros
        if network.sampled_softmax:
            network.sampling_weights.assign(np.maximum(self.item_popularity_, 1.0) ** 0.75)
        return network


@register
class MultVAE(_MultinomialRecommender):
    """Variational autoencoder with a multinomial likelihood for implicit feedback (Liang et al., 2018).

    Each user's interaction row is L2-normalised, dropped out and encoded to a Gaussian code
    (``[I-600-200-600-I]``, tanh); the decoder's softmax over items is trained to put mass on the
    user's items, with a KL term whose weight ``beta`` is annealed from 0 to ``beta_cap``.
    Training runs through ``keras.Model.fit`` on shuffled batches of sparse user rows and, given
    ``valid``, keeps the weights of the epoch with the best validation NDCG@100.

    The user code is the decoder's last hidden activation at the code's mean (no dropout, no
    sampling) and the item code is the output layer's kernel column plus its bias, so the score
    ``h_u · W_i + b_i`` is the item's logit. Users unseen at fit time are folded in by encoding
    their history: nothing is retrained.

    Parameters
    ----------
    hidden_dim : int, default 600
        Width of the hidden tanh layer of the encoder and of the decoder.
    code_dim : int, default 200
        Width of the Gaussian code.
    dropout : float, default 0.5
        Dropout rate on the normalised input during training.
    beta_cap : float, default 1.0
        Largest weight of the KL term. The paper caps it at 0.2 on its larger data sets; on
        MovieLens-100K (protocol A1 validation split) a cap of 1.0 reached over all ``epochs``
        did better: early stopping then picks ``beta`` around 0.5.
    anneal_steps : int, optional
        Updates over which ``beta`` rises linearly from 0 to ``beta_cap``; by default the number
        of updates in ``epochs`` epochs.
    l2 : float, default 0.0
        L2 penalty ``l2 * sum(w ** 2)`` on every kernel.
    learning_rate : float, default 1e-3
        Adam's step size.
    {sampled_softmax}
    {training_parameters}

    Attributes
    ----------
    network_ : aerec.models.vae.MultinomialAutoencoder
        The trained Keras model.
    history_ : dict of lists
        Per epoch: ``loss``, ``beta``, ``val_ndcg@100`` and ``valid_seconds`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = MultVAE(hidden_dim=8, code_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    _variational = True

    def __init__(self, hidden_dim: int = 600, code_dim: int = 200, dropout: float = 0.5, beta_cap: float = 1.0,
                 anneal_steps: int | None = None, l2: float = 0.0, learning_rate: float = 1e-3,
                 sampled_softmax: int | str | None = "auto", epochs: int = 200, batch_size: int = 500,
                 patience: int | None = 50, seed: int = 0, verbose: int = 0):
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.anneal_steps = anneal_steps
        self.l2 = l2
        self.learning_rate = learning_rate
        self.sampled_softmax = sampled_softmax
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    _parameter_constraints = {
        **_MultinomialRecommender._parameter_constraints,
        "beta_cap": [Interval("real", 0, None)],
        "anneal_steps": [Interval("int", 0, None), None],
    }

    def _callbacks(self, steps_per_epoch: int) -> list:
        from ..models.callbacks import KLAnnealing

        steps = self.anneal_steps if self.anneal_steps is not None else self.epochs * steps_per_epoch
        return [KLAnnealing(cap=self.beta_cap, steps=steps)]


@register
class MultDAE(_MultinomialRecommender):
    """Denoising autoencoder with a multinomial likelihood for implicit feedback (Liang et al., 2018).

    Mult-VAE without the variational part: the dropped-out, L2-normalised interaction row is
    encoded to a deterministic tanh code and decoded to a softmax over items, with L2 weight
    decay. By default the network is ``[I-200-I]`` (the shape of the authors' Mult-DAE example);
    ``hidden_dim=600`` gives ``[I-600-200-600-I]``. Training, validation, codes (``h_u · W_i + b_i``
    is the item's logit; without hidden layers ``h_u`` is the code itself), fold-in and saving are
    as in :class:`MultVAE`.

    The defaults were chosen on the validation split of MovieLens-100K protocol A1 (seed 0): the
    shallow network with light weight decay and a larger step beat ``[I-600-200-600-I]`` with
    ``l2=0.01``.

    Parameters
    ----------
    hidden_dim : int, default 0
        Width of the hidden tanh layer of the encoder and of the decoder; 0 for none.
    code_dim : int, default 200
        Width of the code.
    dropout : float, default 0.5
        Dropout rate on the normalised input during training.
    l2 : float, default 0.001
        L2 penalty ``l2 * sum(w ** 2)`` on every kernel (λ of the paper).
    learning_rate : float, default 3e-3
        Adam's step size.
    {sampled_softmax}
    {training_parameters}

    Attributes
    ----------
    network_ : aerec.models.vae.MultinomialAutoencoder
        The trained Keras model (``variational=False``).
    history_ : dict of lists
        Per epoch: ``loss``, ``val_ndcg@100`` and ``valid_seconds`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = MultDAE(hidden_dim=8, code_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    _variational = False

    def __init__(self, hidden_dim: int = 0, code_dim: int = 200, dropout: float = 0.5,
                 l2: float = 0.001, learning_rate: float = 3e-3, sampled_softmax: int | str | None = "auto",
                 epochs: int = 200, batch_size: int = 500, patience: int | None = 50, seed: int = 0, verbose: int = 0):
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.sampled_softmax = sampled_softmax
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose
