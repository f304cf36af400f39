"""`MultinomialAutoencoder`: Mult-VAE and Mult-DAE of Liang et al. (2018) as one Keras model.

Architecture ``[I -> hidden -> latent -> hidden -> I]`` (``[I-600-200-600-I]`` by default): the
input row is L2-normalised and dropped out, hidden layers are tanh, the output layer gives one
logit per item, and the loss is the multinomial log-likelihood of the user's items under the
softmax of the logits. The variational model adds ``beta * KL(q(z|x) || N(0, I))``, with ``beta``
held in a non-trainable variable that :class:`aerec.models.callbacks.KLAnnealing` raises during
training; the denoising model has a deterministic tanh code and no KL term. Weight decay is an
L2 penalty ``weight_decay * sum(w ** 2)`` on every kernel (as in the authors' code).

The last hidden activation of the decoder, :meth:`MultinomialAutoencoder.user_code`, dotted with
a column of the output kernel plus its bias is the item's logit: that is what makes an inner
product index over the output layer return the model's own ranking.

Large catalogues (``sampled_softmax=S``): the loss's normaliser ``log Σ_j exp(logit_j)`` is estimated
from the user's own items (exactly) and ``S`` negatives shared by the batch, drawn with replacement
from ``q_j ∝ popularity_j ** 0.75`` (:attr:`MultinomialAutoencoder.sampling_weights`) and weighted
``1 / (S q_j)`` (the importance-sampling correction; a negative that is one of the user's items is
dropped). The input layer then multiplies the sparse row (its nonzeros only), so an update costs
the user's items and the ``S`` negatives instead of two passes over the whole catalogue.

For serving, :meth:`MultinomialAutoencoder.numpy_user_code` computes the same user code in NumPy
from a snapshot of the weights (:class:`NumpyInference`): a few small matrix products on the
user's sparse row instead of milliseconds of TensorFlow overhead per eager call.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import scipy.sparse as sp
from keras import layers, ops

__all__ = ["MultinomialAutoencoder", "NumpyInference", "multinomial_nll", "sampled_multinomial_nll"]


class NumpyInference:
    """Mixin for Keras models that also compute their user code in NumPy, from a snapshot of the weights.

    A subclass provides ``_numpy_weight_arrays()`` (a dict of NumPy arrays) and uses
    :meth:`_numpy_weights` in its ``numpy_user_code(x, users=None)``. The snapshot is taken on
    first use and dropped whenever ``fit``, ``set_weights`` or ``load_weights`` runs. While ``fit``
    (or another loop within :meth:`training_steps`) runs there is none and ``numpy_user_code`` returns None, so callers use the Keras model (the
    weights change at every step). Code that assigns variables directly must call
    :meth:`drop_numpy_weights` afterwards.

    ``_numpy_mirrors`` names the Keras methods that ``numpy_user_code`` reproduces: a subclass
    that overrides one of them without overriding ``numpy_user_code`` gets no NumPy path (None)
    rather than codes of the parent's computation.
    """

    _numpy_mirrors: tuple[str, ...] = ("user_code",)

    def _numpy_weight_arrays(self) -> dict:
        raise NotImplementedError

    def _numpy_path_matches(self) -> bool:
        cls = type(self)
        owner = next(c for c in cls.__mro__ if "numpy_user_code" in c.__dict__)
        return all(getattr(cls, name) is getattr(owner, name) for name in self._numpy_mirrors)

    def _numpy_weights(self) -> dict | None:
        """The weight snapshot, or None while ``fit`` runs (or when the NumPy path does not match the model)."""
        if getattr(self, "_numpy_fitting", False) or not self._numpy_path_matches():
            return None
        snapshot = getattr(self, "_numpy_snapshot", None)
        if snapshot is None:
            snapshot = {name: np.ascontiguousarray(value, dtype=np.float32)
                        for name, value in self._numpy_weight_arrays().items()}
            # object.__setattr__: Keras would track a dict set as an attribute
            object.__setattr__(self, "_numpy_snapshot", snapshot)
        return snapshot

    def drop_numpy_weights(self) -> None:
        """Forget the weight snapshot (it is taken again on the next use)."""
        object.__setattr__(self, "_numpy_snapshot", None)

    @contextlib.contextmanager
    def between_steps(self):
        """Within ``fit``, between two steps (an early-stopping check): the weights hold still, so the
        NumPy path is used on a snapshot taken for this block and dropped after it."""
        fitting = getattr(self, "_numpy_fitting", False)
        object.__setattr__(self, "_numpy_fitting", False)
        self.drop_numpy_weights()
        try:
            yield self
        finally:
            self.drop_numpy_weights()
            object.__setattr__(self, "_numpy_fitting", fitting)

    @contextlib.contextmanager
    def training_steps(self):
        """While a training loop runs (``fit``, or a loop of one's own): no NumPy path, the weights
        change at every step."""
        object.__setattr__(self, "_numpy_fitting", True)
        self.drop_numpy_weights()
        try:
            yield self
        finally:
            object.__setattr__(self, "_numpy_fitting", False)
            self.drop_numpy_weights()

    def fit(self, *args, **kwargs):
        with self.training_steps():
            return super().fit(*args, **kwargs)

    def set_weights(self, weights):
        self.drop_numpy_weights()
        return super().set_weights(weights)

    def load_weights(self, *args, **kwargs):
        self.drop_numpy_weights()
        return super().load_weights(*args, **kwargs)


def numpy_rows(x):
    """``x`` as float32 rows for NumPy inference: a CSR matrix stays sparse, anything else becomes a 2-d array."""
    if sp.issparse(x):
        return x if x.format == "csr" and x.dtype == np.float32 else sp.csr_matrix(x, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 1 else x


def _squared_norms(x) -> np.ndarray:
    if sp.issparse(x):
        return np.bincount(np.repeat(np.arange(x.shape[0]), np.diff(x.indptr)), weights=np.square(x.data),
                           minlength=x.shape[0]).astype(np.float32)
    return np.einsum("ij,ij->i", x, x)


def multinomial_nll(x, logits):
    """Mean over users of ``-sum_i x_ui log softmax(logits_u)_i`` (the multinomial log-likelihood, negated)."""
    return -ops.mean(ops.sum(ops.log_softmax(logits, axis=-1) * x, axis=-1))


def sampled_multinomial_nll(x, h, items, bias, negatives, log_q):
    """:func:`multinomial_nll` with the softmax's normaliser estimated by sampling.

    ``-Σ_i x_ui log softmax_i = Σ_i x_ui (log Z_u - logit_ui)``; ``Z_u = Σ_j exp(logit_uj)`` is taken
    as the exact sum over the user's own items plus ``Σ_{s ∉ items(u)} exp(logit_us) / (S q_s)`` over
    the ``S`` shared ``negatives`` (drawn with replacement from ``q``, ``log_q`` their log-probabilities):
    an unbiased estimate of the rest of the catalogue. Only the logits of the users' items and of the
    distinct negatives are computed (a negative drawn ``c`` times counts ``c`` times).

    Parameters
    ----------
    x : (B, I) tf.SparseTensor (entries row-major) or dense rows; h : (B, d) user codes;
    items : (I, d) item codes (the output kernel, transposed); bias : (I,); negatives : (S,) int;
    log_q : (S,) float. The gradients of ``items`` and ``bias`` are row-sparse (``tf.IndexedSlices``).
    """
    import tensorflow as tf

    if not isinstance(x, tf.SparseTensor):
        x = tf.sparse.from_dense(x)
    n_rows, n_items = tf.shape(h)[0], tf.shape(items)[0]
    rows, cols, weights = tf.cast(x.indices[:, 0], tf.int32), tf.cast(x.indices[:, 1], tf.int32), x.values
    positive = tf.reduce_sum(tf.gather(h, rows) * tf.gather(items, cols), axis=1) + tf.gather(bias, cols)
    drawn, slot_of_draw, count = tf.unique_with_counts(tf.cast(negatives, tf.int32))
    log_q = tf.math.unsorted_segment_max(log_q, slot_of_draw, tf.size(drawn))  # one value per distinct item
    sampled = tf.cast(tf.size(negatives), tf.float32)
    correction = tf.math.log(tf.cast(count, tf.float32)) - tf.math.log(sampled) - log_q
    negative = tf.matmul(h, tf.gather(items, drawn), transpose_b=True) + tf.gather(bias, drawn) + correction
    # accidental hits: a drawn item that is one of the user's items does not count as a negative
    slot = tf.tensor_scatter_nd_update(tf.fill([n_items], -1), drawn[:, None], tf.range(tf.size(drawn)))
    slot_of_positive = tf.gather(slot, cols)
    is_drawn = slot_of_positive >= 0
    hits = tf.scatter_nd(tf.stack([tf.boolean_mask(rows, is_drawn), tf.boolean_mask(slot_of_positive, is_drawn)], 1),
                         tf.ones(tf.reduce_sum(tf.cast(is_drawn, tf.int32)), tf.bool), tf.shape(negative))
    negative = tf.where(hits, tf.float32.min, negative)
    top = tf.math.unsorted_segment_max(positive, rows, n_rows)
    top = tf.maximum(top, tf.reduce_max(negative, axis=1))
    mass = (tf.math.unsorted_segment_sum(tf.exp(positive - tf.gather(top, rows)), rows, n_rows)
            + tf.reduce_sum(tf.exp(negative - top[:, None]), axis=1))
    log_z = top + tf.math.log(mass)
    return tf.reduce_mean(tf.math.unsorted_segment_sum(weights * (tf.gather(log_z, rows) - positive), rows, n_rows))


@keras.saving.register_keras_serializable(package="aerec")
class ItemLogits(layers.Layer):
    """``logits = h Wᵀ + b`` with the item codes ``W`` stored item-major, ``(n_items, d)``.

    The output layer of a sampled softmax: a batch gathers the rows of the items it scores, so
    their gradients are row-sparse (``tf.IndexedSlices``) and :class:`~aerec.models.optimizers.LazyAdam`
    updates only those rows. ``kernel`` is ``Wᵀ``, as a ``Dense`` layer's.
    """

    def __init__(self, n_items: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.seed = int(n_items), seed

    def build(self, input_shape):
        self.item_kernel = self.add_weight(shape=(self.n_items, int(input_shape[-1])), name="item_kernel",
                                           initializer=keras.initializers.GlorotUniform(seed=self.seed))
        self.bias = self.add_weight(shape=(self.n_items,), name="bias", initializer=keras.initializers.TruncatedNormal(
            stddev=0.001, seed=None if self.seed is None else self.seed + 1))
        self.built = True

    @property
    def kernel(self):
        return ops.transpose(self.item_kernel)

    def call(self, h):
        return ops.matmul(h, ops.transpose(self.item_kernel)) + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="aerec")
class MultinomialAutoencoder(NumpyInference, keras.Model):
    """Multinomial-likelihood autoencoder over item interaction rows (Mult-VAE / Mult-DAE).

    Parameters
    ----------
    n_items : int
        Width of the input and output layers.
    hidden_dim : int, default 600
        Width of the encoder's and the decoder's hidden tanh layer; 0 for none (``[I-latent-I]``).
    latent_dim : int, default 200
        Width of the code ``z``.
    variational : bool, default True
        Mult-VAE (Gaussian code, reparameterised sample in training, KL term) when True,
        Mult-DAE (deterministic tanh code, no KL) when False.
    dropout : float, default 0.5
        Rate of the dropout applied to the normalised input in training.
    weight_decay : float, default 0.0
        L2 penalty on the kernels, ``weight_decay * sum(w ** 2)`` per layer.
    sampled_softmax : int, default 0
        Train with this many sampled negatives per batch instead of the full softmax (0). Inference
        is unchanged: every item's logit.
    seed : int, optional
        Seed of the initial weights, the dropout masks, the reparameterisation noise and the negatives.

    Attributes
    ----------
    sampling_weights : keras.Variable, shape (n_items,)
        Unnormalised probabilities of drawing each item as a negative (ones until the owner sets
        them, e.g. to popularity ** 0.75).

    Examples
    --------
    >>> import numpy as np
    >>> net = MultinomialAutoencoder(n_items=5, hidden_dim=4, latent_dim=2, seed=0)
    >>> logits = net(np.eye(5, dtype="float32")[:2])
    >>> tuple(logits.shape), tuple(net.user_code(np.eye(5, dtype="float32")[:2]).shape)
    ((2, 5), (2, 4))
    """

    def __init__(self, n_items: int, hidden_dim: int = 600, latent_dim: int = 200, variational: bool = True,
                 dropout: float = 0.5, weight_decay: float = 0.0, sampled_softmax: int = 0, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.sampled_softmax = int(sampled_softmax or 0)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.variational = bool(variational)
        self.dropout_rate = float(dropout)
        self.weight_decay = float(weight_decay)
        self.seed = seed
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay > 0 else None

        def dense(units, activation, name, j, penalised=True):
            # one seed per layer: an initializer given an int seed draws the same numbers on every call
            s = None if seed is None else seed + 2 * j
            return layers.Dense(units, activation=activation, name=name, kernel_regularizer=reg if penalised else None,
                                kernel_initializer=keras.initializers.GlorotUniform(seed=s),
                                bias_initializer=keras.initializers.TruncatedNormal(
                                    stddev=0.001, seed=None if s is None else s + 1))

        # with a sampled softmax the item x width matrices are penalised row by row in compute_loss
        # (the rows a batch touches), so that their gradients stay row-sparse
        sampled = bool(self.sampled_softmax)
        self.input_dropout = layers.Dropout(self.dropout_rate, seed=seed, name="input_dropout")
        # hidden_dim=0 drops the hidden layers: [I-latent-I], the shape of the paper's Mult-DAE example
        self.encoder_hidden = (dense(self.hidden_dim, "tanh", "encoder_hidden", 1, penalised=not sampled)
                               if self.hidden_dim else None)
        # the VAE's encoder emits mean and log-variance side by side; the DAE's emits a tanh code
        self.encoder_code = dense(2 * self.latent_dim if self.variational else self.latent_dim,
                                  None if self.variational else "tanh", "encoder_code", 2,
                                  penalised=not sampled or bool(self.hidden_dim))
        self.decoder_hidden = dense(self.hidden_dim, "tanh", "decoder_hidden", 3) if self.hidden_dim else None
        if sampled:
            self.output_layer = ItemLogits(self.n_items, seed=None if seed is None else seed + 8, name="item_logits")
        else:
            self.output_layer = dense(self.n_items, None, "item_logits", 4)
        self.beta = keras.Variable(0.0, trainable=False, dtype="float32", name="beta")
        self.noise_seed = keras.random.SeedGenerator(None if seed is None else seed + 1000)
        if self.sampled_softmax:
            self.sampling_weights = self.add_weight(shape=(self.n_items,), initializer="ones", trainable=False,
                                                    name="sampling_weights")
            self.sample_seed = keras.random.SeedGenerator(None if seed is None else seed + 2000)

    @property
    def code_dim(self) -> int:
        """Width of :meth:`user_code` (the decoder's last hidden layer, or the code without hidden layers)."""
        return self.hidden_dim or self.latent_dim

    def build(self, input_shape):
        width = input_shape[-1]
        if self.encoder_hidden is not None:
            self.encoder_hidden.build((None, width))
            width = self.hidden_dim
        self.encoder_code.build((None, width))
        if self.decoder_hidden is not None:
            self.decoder_hidden.build((None, self.latent_dim))
        self.output_layer.build((None, self.code_dim))
        self.built = True

    def encode(self, x, training=False):
        """Mean (and log-variance, for the VAE; else None) of the code of each row."""
        first = self.encoder_hidden if self.encoder_hidden is not None else self.encoder_code
        if training and self.sampled_softmax:
            x = first.activation(self._sparse_product(x, first.kernel) + first.bias)
        else:
            x = ops.convert_to_tensor(x, dtype="float32")
            x = x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
            x = first(self.input_dropout(x, training=training))
        code = self.encoder_code(x) if self.encoder_hidden is not None else x
        if self.variational:
            return code[:, : self.latent_dim], code[:, self.latent_dim:]
        return code, None

    def _sparse_product(self, x, kernel):
        """``dropout(x / |x|) @ kernel`` over the nonzeros of ``x`` only (training with a sampled softmax)."""
        import tensorflow as tf

        if not isinstance(x, tf.SparseTensor):
            x = tf.sparse.from_dense(ops.convert_to_tensor(x, dtype="float32"))
        rows, values = x.indices[:, 0], x.values
        norms = tf.math.unsorted_segment_sum(tf.square(values), rows, x.dense_shape[0])
        values = values * tf.gather(tf.math.rsqrt(tf.maximum(norms, 1e-12)), rows)
        if self.dropout_rate > 0:
            keep = keras.random.uniform(tf.shape(values), seed=self.noise_seed) >= self.dropout_rate
            values = tf.where(keep, values / (1.0 - self.dropout_rate), 0.0)
        # the rows of the kernel the nonzeros pick, weighted and summed per row (its gradient touches only them)
        return tf.math.unsorted_segment_sum(values[:, None] * tf.gather(kernel, x.indices[:, 1]), rows, x.dense_shape[0])

    def sample_negatives(self):
        """``sampled_softmax`` item indices drawn with replacement ∝ :attr:`sampling_weights`, and their log-probabilities."""
        weights = ops.convert_to_tensor(self.sampling_weights)
        cdf = ops.cumsum(weights)
        total = cdf[-1]
        draws = keras.random.uniform((self.sampled_softmax,), seed=self.sample_seed) * total
        negatives = ops.minimum(ops.searchsorted(cdf, draws, side="right"), self.n_items - 1)
        return negatives, ops.log(ops.take(weights, negatives) / total)

    def user_code(self, x):
        """``h_u``: the decoder's last hidden activation at the code's mean (no dropout, no sampling)."""
        mean, _ = self.encode(x, training=False)
        return self.decode_hidden(mean)

    def decode_hidden(self, z):
        return z if self.decoder_hidden is None else self.decoder_hidden(z)

    _numpy_mirrors = ("user_code", "encode", "decode_hidden")

    def _numpy_weight_arrays(self) -> dict:
        def array(variable):
            return np.asarray(ops.convert_to_numpy(variable))

        arrays = {}
        if self.encoder_hidden is not None:
            arrays.update(encoder_hidden_kernel=array(self.encoder_hidden.kernel),
                          encoder_hidden_bias=array(self.encoder_hidden.bias))
        # only the mean half of the VAE's encoder output is used at inference
        arrays.update(encoder_code_kernel=array(self.encoder_code.kernel)[:, : self.latent_dim],
                      encoder_code_bias=array(self.encoder_code.bias)[: self.latent_dim])
        if self.decoder_hidden is not None:
            arrays.update(decoder_hidden_kernel=array(self.decoder_hidden.kernel),
                          decoder_hidden_bias=array(self.decoder_hidden.bias))
        return arrays

    def numpy_user_code(self, x, users=None):
        """:meth:`user_code` in NumPy (equal up to float32 rounding), or None while the network trains.

        Parameters
        ----------
        x : array (n, n_items) or scipy sparse matrix
            Interaction rows; a sparse row costs only its own items in the first layer.
        users : ignored
            For a common signature with networks that take user indices.
        """
        w = self._numpy_weights()
        if w is None:
            return None
        x = numpy_rows(x)
        scale = 1.0 / np.sqrt(np.maximum(_squared_norms(x), np.float32(1e-12)))
        first = "encoder_hidden" if self.encoder_hidden is not None else "encoder_code"
        # (x / |x|) W = (x W) / |x|: the sparse row is multiplied first, then scaled
        h = np.asarray(x @ w[first + "_kernel"]) * scale[:, None].astype(np.float32) + w[first + "_bias"]
        if self.encoder_hidden is not None:
            h = np.tanh(h) @ w["encoder_code_kernel"] + w["encoder_code_bias"]
        if not self.variational:
            h = np.tanh(h)
        if self.decoder_hidden is not None:
            h = np.tanh(h @ w["decoder_hidden_kernel"] + w["decoder_hidden_bias"])
        return h.astype(np.float32, copy=False)

    def call(self, x, training=False):
        mean, log_var = self.encode(x, training=training)
        z = mean
        if self.variational and training:
            std = ops.exp(0.5 * log_var)
            z = mean + std * keras.random.normal(ops.shape(std), seed=self.noise_seed)
            kl = ops.mean(ops.sum(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var), axis=-1))
            self.add_loss(self.beta * kl)
        if training and self.sampled_softmax:
            return self.decode_hidden(z)  # the user codes: compute_loss takes the logits it needs
        return self.output_layer(self.decode_hidden(z))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # the target is the input row itself; self.losses holds the KL term and the weight decay
        if training and self.sampled_softmax:
            import tensorflow as tf

            negatives, log_q = self.sample_negatives()
            items = self.output_layer.item_kernel
            loss = sampled_multinomial_nll(x, y_pred, items, self.output_layer.bias, negatives, log_q)
            if self.weight_decay > 0:  # the rows of the items this batch read, in and out
                first = self.encoder_hidden if self.encoder_hidden is not None else self.encoder_code
                seen = tf.unique(tf.cast(x.indices[:, 1], tf.int32))[0]
                scored = tf.unique(tf.concat([seen, tf.cast(negatives, tf.int32)], 0))[0]
                loss = loss + self.weight_decay * (tf.reduce_sum(tf.square(tf.gather(first.kernel, seen)))
                                                   + tf.reduce_sum(tf.square(tf.gather(items, scored))))
        else:
            loss = multinomial_nll(x, y_pred)
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim,
                      variational=self.variational, dropout=self.dropout_rate, weight_decay=self.weight_decay,
                      sampled_softmax=self.sampled_softmax, seed=self.seed)
        return config
