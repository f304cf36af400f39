"""`TableNetwork`: an autoencoder over table rows with numeric and categorical cells, some missing.

The model's input is a dict of arrays (no DataFrames here): ``"numeric"``, float (rows, p)
with NaN for a missing cell, and ``"categorical"``, string (rows, q) with ``""`` for a missing
cell. Preprocessing lives inside the model, so a saved model takes raw values: a Keras
``Normalization`` layer standardises the numeric columns (with the observed cells' mean and
variance, given at construction) and one ``StringLookup`` per categorical column maps values to
one-hot vectors (missing and unseen values become all-zero vectors). The encoder sees the
standardised values (0 where missing), the numeric columns' observed-indicators and the
one-hots.

The loss counts observed cells only: ``0.5 * (x - x_hat) ** 2`` for a standardised numeric cell
(the Gaussian negative log-likelihood with unit variance) and the cross-entropy of the column's
softmax for a categorical cell, summed over a row's observed cells and averaged over rows. When
``fit`` is given targets ``y`` (validation), only the cells observed in ``y`` but missing in ``x``
are scored: that is the imputation error on cells hidden on purpose.

Kinds (what regularises the code):

- ``"undercomplete"``: a code narrower than the input, nothing else;
- ``"sparse"``: ``sparsity * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the batch mean of the
  sigmoid code unit ``j`` (``sparsity_penalty="kl"``), or ``sparsity * mean(sum_j |z_j|)`` of a
  ReLU code (``"l1"``);
- ``"contractive"``: ``contraction * mean ||J||_F^2``, the squared Frobenius norm of the
  Jacobian of the code with respect to the encoder's input, computed exactly by the chain rule
  (:meth:`TableNetwork.jacobian_norm`);
- ``"denoising"``: in training, each observed cell is hidden from the input with probability
  ``corruption`` (it stays a target): the model learns to fill holes;
- ``"variational"``: a Gaussian code, sampled in training, with ``beta * KL(q(z|x) || N(0, I))``.

The penalties are added with ``add_loss`` in training calls only.
"""
from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["TableNetwork", "KINDS"]

KINDS = ("undercomplete", "sparse", "contractive", "denoising", "variational")

_DERIVATIVES = {  # f'(a) from a and f(a), for the exact Jacobian
    "linear": lambda a, y: ops.ones_like(a),
    "tanh": lambda a, y: 1.0 - ops.square(y),
    "sigmoid": lambda a, y: y * (1.0 - y),
    "relu": lambda a, y: ops.cast(a > 0, a.dtype),
    "elu": lambda a, y: ops.where(a > 0, ops.ones_like(a), y + 1.0),
}


@keras.saving.register_keras_serializable(package="aerec")
class TableNetwork(keras.Model):
    """Autoencoder over rows of ``p`` numeric and ``q`` categorical cells with a masked loss.

    Parameters
    ----------
    numeric_mean, numeric_variance : list of float
        Mean and variance of each numeric column's observed cells (``p`` values each; may be empty).
    vocabularies : list of list of str
        The categories of each categorical column (``q`` lists; may be empty).
    kind : {"undercomplete", "sparse", "contractive", "denoising", "variational"}
    hidden : tuple of int, default (64,)
        Widths of the encoder's hidden layers (the decoder mirrors them).
    code_dim : int, default 8
    activation : {"tanh", "sigmoid", "relu", "elu", "linear"}, default "tanh"
    corruption : float, default 0.5
        ``"denoising"``: probability of hiding each observed input cell in training.
    sparsity, sparsity_target, sparsity_penalty : float, float, {"kl", "l1"}
        ``"sparse"``: weight of the penalty, target mean activation (KL), kind of penalty.
    contraction : float, default 0.1
        ``"contractive"``: weight of the squared Frobenius norm of the encoder's Jacobian.
    beta : float, default 1.0
        ``"variational"``: weight of the KL term.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> net = TableNetwork([0.0], [1.0], [["a", "b"]], code_dim=2, hidden=(4,), seed=0)
    >>> x = {"numeric": np.array([[0.5], [np.nan]], "float32"), "categorical": np.array([["a"], [""]])}
    >>> tuple(net.encode(x).shape), tuple(net(x).shape)
    ((2, 2), (2, 3))
    """

    def __init__(self, numeric_mean, numeric_variance, vocabularies, kind: str = "undercomplete", hidden=(64,),
                 code_dim: int = 8, activation: str = "tanh", corruption: float = 0.5, sparsity: float = 1.0,
                 sparsity_target: float = 0.05, sparsity_penalty: str = "kl", contraction: float = 0.1,
                 beta: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if activation not in _DERIVATIVES:
            raise ValueError(f"activation must be one of {sorted(_DERIVATIVES)}, got {activation!r}")
        if sparsity_penalty not in ("kl", "l1"):
            raise ValueError(f"sparsity_penalty must be 'kl' or 'l1', got {sparsity_penalty!r}")
        self.numeric_mean = [float(v) for v in numeric_mean]
        self.numeric_variance = [float(v) for v in numeric_variance]
        self.vocabularies = [[str(v) for v in vocab] for vocab in vocabularies]
        self.kind = kind
        self.hidden = tuple(int(h) for h in ((hidden,) if isinstance(hidden, int) else hidden))
        self.code_dim = int(code_dim)
        self.activation_name = activation
        self.corruption = float(corruption)
        self.sparsity = float(sparsity)
        self.sparsity_target = float(sparsity_target)
        self.sparsity_penalty = sparsity_penalty
        self.contraction = float(contraction)
        self.beta = float(beta)
        self.seed = seed
        self.n_numeric = len(self.numeric_mean)
        self.n_categorical = len(self.vocabularies)
        self.category_sizes = [len(v) for v in self.vocabularies]

        def seed_of(j):
            return None if seed is None else seed + j

        act = None if activation == "linear" else activation
        self.normalizer = layers.Normalization(mean=self.numeric_mean, variance=self.numeric_variance,
                                               name="standardise") if self.n_numeric else None
        self.lookups = [layers.StringLookup(vocabulary=vocab, mask_token="", num_oov_indices=1, name=f"lookup_{j}")
                        for j, vocab in enumerate(self.vocabularies)]
        self.encoder_layers = [layers.Dense(h, activation=act, name=f"encoder_{j}",
                                            kernel_initializer=keras.initializers.GlorotUniform(seed=seed_of(j)))
                               for j, h in enumerate(self.hidden)]
        code_activation = {"sparse": "sigmoid" if sparsity_penalty == "kl" else "relu"}.get(kind)
        self.code_activation = code_activation or "linear"
        width = 2 * self.code_dim if kind == "variational" else self.code_dim
        self.code_layer = layers.Dense(width, activation=code_activation, name="code",
                                       kernel_initializer=keras.initializers.GlorotUniform(seed=seed_of(50)))
        self.decoder_layers = [layers.Dense(h, activation=act, name=f"decoder_{j}",
                                            kernel_initializer=keras.initializers.GlorotUniform(seed=seed_of(100 + j)))
                               for j, h in enumerate(reversed(self.hidden))]
        self.output_layer = layers.Dense(self.n_numeric + sum(self.category_sizes), name="reconstruction",
                                         kernel_initializer=keras.initializers.GlorotUniform(seed=seed_of(200)))
        self.noise_seed = keras.random.SeedGenerator(seed_of(300))
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")

    @property
    def input_dim(self) -> int:
        """Width of the encoder's input: standardised values, their observed-indicators, one-hots."""
        return 2 * self.n_numeric + sum(self.category_sizes)

    def build(self, input_shape=None):
        if self.normalizer is not None:
            self.normalizer.build((None, self.n_numeric))
        width = self.input_dim
        for layer, units in zip(self.encoder_layers, self.hidden):
            layer.build((None, width))
            width = units
        self.code_layer.build((None, width))
        width = self.code_dim
        for layer, units in zip(self.decoder_layers, reversed(self.hidden)):
            layer.build((None, width))
            width = units
        self.output_layer.build((None, width))
        self.built = True

    # --- preprocessing -----------------------------------------------------------------
    def preprocess(self, inputs):
        """``(values, mask)``: standardised numeric values then category indices (-1 where missing or
        unseen) as floats, and 1.0 where a cell is observed, each (rows, p + q)."""
        if not self.built:
            self.build()
        parts, masks = [], []
        if self.n_numeric:
            raw = ops.cast(inputs["numeric"], "float32")
            observed = ops.logical_not(ops.isnan(raw))
            z = self.normalizer(ops.where(observed, raw, ops.zeros_like(raw)))
            parts.append(ops.where(observed, z, ops.zeros_like(z)))
            masks.append(ops.cast(observed, "float32"))
        for j, lookup in enumerate(self.lookups):
            index = ops.cast(lookup(inputs["categorical"][:, j]), "int32") - 2  # 0 = missing, 1 = unseen
            parts.append(ops.cast(index, "float32")[:, None])
            masks.append(ops.cast(index >= 0, "float32")[:, None])
        return ops.concatenate(parts, axis=1), ops.concatenate(masks, axis=1)

    def _encoder_input(self, values, mask):
        p = self.n_numeric
        parts = []
        if p:
            parts += [values[:, :p], mask[:, :p]]
        for j, size in enumerate(self.category_sizes):
            index = ops.cast(values[:, p + j], "int32")
            parts.append(ops.one_hot(ops.maximum(index, 0), size) * mask[:, p + j:p + j + 1])
        return ops.concatenate(parts, axis=1)

    def _corrupt(self, values, mask):
        keep = ops.cast(keras.random.uniform(ops.shape(mask), seed=self.noise_seed) >= self.corruption, "float32")
        return values * keep, mask * keep

    # --- encoder and decoder -----------------------------------------------------------
    def _encode_input(self, v):
        """Pre-activations and activations of every encoder layer, and the code layer's output."""
        pre, post, h = [], [], v
        for layer in self.encoder_layers:
            a = ops.matmul(h, layer.kernel) + layer.bias
            h = layer.activation(a)
            pre.append(a)
            post.append(h)
        a = ops.matmul(h, self.code_layer.kernel) + self.code_layer.bias
        return pre, post, a, self.code_layer.activation(a)

    def encode(self, inputs):
        """The code of each row (the mean of the code for the variational kind)."""
        values, mask = self.preprocess(inputs)
        _, _, _, code = self._encode_input(self._encoder_input(values, mask))
        return code[:, : self.code_dim]

    def decode(self, z):
        h = z
        for layer in self.decoder_layers:
            h = layer(h)
        return self.output_layer(h)

    def jacobian_norm(self, inputs):
        """``||d code / d encoder input||_F^2`` of each row, exactly (chain rule through the layers)."""
        values, mask = self.preprocess(inputs)
        return self._jacobian_norm(self._encoder_input(values, mask))

    def _jacobian_norm(self, v):
        pre, post, a_code, code = self._encode_input(v)
        deriv = _DERIVATIVES[self.activation_name]
        code_deriv = _DERIVATIVES[self.code_activation](a_code, code)[:, : self.code_dim]
        # G = d code / d h_L, (rows, code, h_L); then back through each layer to the input
        G = code_deriv[:, :, None] * ops.transpose(self.code_layer.kernel[:, : self.code_dim])[None, :, :]
        for layer, a, h in reversed(list(zip(self.encoder_layers, pre, post))):
            G = ops.matmul(G * deriv(a, h)[:, None, :], ops.transpose(layer.kernel))
        return ops.sum(ops.square(G), axis=(1, 2))

    # --- forward -----------------------------------------------------------------------
    def call(self, inputs, training=False):
        values, mask = self.preprocess(inputs)
        if training and self.kind == "denoising" and self.corruption > 0:
            values, mask = self._corrupt(values, mask)
        v = self._encoder_input(values, mask)
        _, _, _, code = self._encode_input(v)
        if self.kind == "variational":
            mean, log_var = code[:, : self.code_dim], code[:, self.code_dim:]
            z = mean
            if training:
                z = mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.noise_seed)
                kl = ops.mean(ops.sum(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var), axis=1))
                self.add_loss(self.beta * kl)
            return self.decode(z)
        if training and self.kind == "sparse":
            if self.sparsity_penalty == "kl":
                rho, rho_hat = self.sparsity_target, ops.clip(ops.mean(code, axis=0), 1e-6, 1.0 - 1e-6)
                kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
                self.add_loss(self.sparsity * ops.sum(kl))
            else:
                self.add_loss(self.sparsity * ops.mean(ops.sum(ops.abs(code), axis=1)))
        if training and self.kind == "contractive":
            self.add_loss(self.contraction * ops.mean(self._jacobian_norm(v)))
        return self.decode(code)

    def cell_losses(self, values, mask, output):
        """Loss of every cell, (rows, p + q): ``0.5 * squared error`` (numeric), cross-entropy (categorical); 0 where masked."""
        p = self.n_numeric
        parts = []
        if p:
            parts.append(0.5 * ops.square(values[:, :p] - output[:, :p]))
        start = p
        for j, size in enumerate(self.category_sizes):
            logits = output[:, start:start + size]
            index = ops.maximum(ops.cast(values[:, p + j], "int32"), 0)
            log_p = ops.log_softmax(logits, axis=1)
            parts.append(-ops.sum(ops.one_hot(index, size) * log_p, axis=1, keepdims=True))
            start += size
        return ops.concatenate(parts, axis=1) * mask

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        values, mask = self.preprocess(x)
        if y is not None:  # validation: score the cells observed in y but hidden in x
            target_values, target_mask = self.preprocess(y)
            values, mask = target_values, target_mask * (1.0 - mask)
        recon = ops.mean(ops.sum(self.cell_losses(values, mask, y_pred), axis=1))
        self.reconstruction_tracker.update_state(recon)
        loss = recon
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def reconstruct(self, inputs):
        """``(numeric, categories)``: numeric reconstructions in the input's units (rows, p) and the most
        likely category index of each categorical column (rows, q)."""
        output = self(inputs, training=False)
        p = self.n_numeric
        numeric = None
        if p:
            std = ops.sqrt(ops.maximum(ops.convert_to_tensor(self.numeric_variance), 1e-12))
            numeric = output[:, :p] * std + ops.convert_to_tensor(self.numeric_mean)
        cats, start = [], p
        for size in self.category_sizes:
            cats.append(ops.argmax(output[:, start:start + size], axis=1))
            start += size
        return numeric, (ops.stack(cats, axis=1) if cats else None)

    def row_scores(self, inputs):
        """Mean cell loss over each row's observed cells (NaN for a row with none): the anomaly score."""
        values, mask = self.preprocess(inputs)
        losses = self.cell_losses(values, mask, self(inputs, training=False))
        return ops.sum(losses, axis=1) / ops.sum(mask, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(numeric_mean=self.numeric_mean, numeric_variance=self.numeric_variance,
                      vocabularies=self.vocabularies, kind=self.kind, hidden=list(self.hidden),
                      code_dim=self.code_dim, activation=self.activation_name, corruption=self.corruption,
                      sparsity=self.sparsity, sparsity_target=self.sparsity_target,
                      sparsity_penalty=self.sparsity_penalty, contraction=self.contraction, beta=self.beta,
                      seed=self.seed)
        return config
