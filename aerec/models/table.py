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

The penalties are added with ``add_loss`` in training calls only. Each kind is one
:class:`~aerec.models.table_kinds.TableKind` subclass in :mod:`aerec.models.table_kinds`: what it
does to the code and the input, and its penalty, in one place.

Ensemble (``members``): the network holds ``members`` independent autoencoders side by side (every
weight has a leading ``members`` axis, :class:`MemberDense`), trained in the same steps, each with
its own initial weights, hidden cells and dropout. In training the output is (rows, members,
outputs) and the loss is the mean of the members' losses (penalties included); in inference it is
the members' average (numeric cells: the mean; categorical cells: the log of the mean of the
probabilities), which is what :meth:`TableNetwork.reconstruct` and
:meth:`TableNetwork.row_scores` use. Each member has its own code space, so
:meth:`TableNetwork.encode` gives the first member's code.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from .table_kinds import KINDS, TABLE_KINDS

__all__ = ["TableNetwork", "MemberDense", "KINDS"]



_DERIVATIVES = {  # f'(a) from a and f(a), for the exact Jacobian
    "linear": lambda a, y: ops.ones_like(a),
    "tanh": lambda a, y: 1.0 - ops.square(y),
    "sigmoid": lambda a, y: y * (1.0 - y),
    "relu": lambda a, y: ops.cast(a > 0, a.dtype),
    "elu": lambda a, y: ops.where(a > 0, ops.ones_like(a), y + 1.0),
}


@keras.saving.register_keras_serializable(package="aerec")
class MemberDense(layers.Layer):
    """``members`` independent dense layers side by side: kernel (members, in, units), bias (members, units).

    Takes (rows, in), shared by every member, or (rows, members, in), one input per member, and
    gives (rows, members, units). Each member's kernel starts Glorot-uniform on its own fans.

    Examples
    --------
    >>> import numpy as np
    >>> layer = MemberDense(4, members=3, seed=0)
    >>> tuple(layer(np.ones((2, 5), "float32")).shape), tuple(layer.kernel.shape)
    ((2, 3, 4), (3, 5, 4))
    """

    def __init__(self, units: int, members: int = 1, activation=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.members = int(members)
        self.activation = keras.activations.get(activation)
        self.seed = seed

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        limit = (6.0 / (fan_in + self.units)) ** 0.5
        self.kernel = self.add_weight(name="kernel", shape=(self.members, fan_in, self.units),
                                      initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed))
        self.bias = self.add_weight(name="bias", shape=(self.members, self.units), initializer="zeros")
        self.built = True

    def linear(self, h):
        """Pre-activations: (rows, in) or (rows, members, in) -> (rows, members, units)."""
        if len(h.shape) == 2:
            return ops.einsum("bi,kio->bko", h, self.kernel) + self.bias
        return ops.einsum("bki,kio->bko", h, self.kernel) + self.bias

    def call(self, h):
        return self.activation(self.linear(h))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, members=self.members, activation=keras.activations.serialize(self.activation),
                      seed=self.seed)
        return config


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
    corruption : float, default 0.25
        ``"denoising"``: probability of hiding each observed input cell in training.
    sparsity, sparsity_target, sparsity_penalty : float, float, {"kl", "l1"}
        ``"sparse"``: weight of the penalty, target mean activation (KL), kind of penalty.
    contraction : float, default 0.1
        ``"contractive"``: weight of the squared Frobenius norm of the encoder's Jacobian.
    beta : float, default 1.0
        ``"variational"``: weight of the KL term.
    visible_weight : float, default 0.1
        ``"denoising"``: weight of the loss on the observed cells left visible in a training step;
        the cells hidden in that step have weight 1 (0: the loss counts the hidden cells only).
    dropout : float, default 0.0
        Dropout rate after each hidden layer, in training (the contractive penalty is computed on the
        encoder without dropout).
    members : int, default 1
        Number of independent autoencoders in the ensemble (see the module's notes).
    linear_skip : bool, default False
        ``"denoising"`` only: add a linear map of the encoder's input (visible cells and their mask) to
        the output, beside the code.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> net = TableNetwork([0.0], [1.0], [["a", "b"]], code_dim=2, hidden=(4,), seed=0)
    >>> x = {"numeric": np.array([[0.5], [np.nan]], "float32"), "categorical": np.array([["a"], [""]])}
    >>> tuple(net.encode(x).shape), tuple(net(x).shape), tuple(net(x, training=True).shape)
    ((2, 2), (2, 3), (2, 1, 3))
    """

    def __init__(self, numeric_mean, numeric_variance, vocabularies, kind: str = "undercomplete", hidden=(64,),
                 code_dim: int = 8, activation: str = "tanh", corruption: float = 0.25, sparsity: float = 1.0,
                 sparsity_target: float = 0.05, sparsity_penalty: str = "kl", contraction: float = 0.1,
                 beta: float = 1.0, visible_weight: float = 0.1, dropout: float = 0.0, members: int = 1,
                 linear_skip: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if activation not in _DERIVATIVES:
            raise ValueError(f"activation must be one of {sorted(_DERIVATIVES)}, got {activation!r}")
        if sparsity_penalty not in ("kl", "l1"):
            raise ValueError(f"sparsity_penalty must be 'kl' or 'l1', got {sparsity_penalty!r}")
        if int(members) < 1:
            raise ValueError(f"members must be a positive integer, got {members!r}")
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
        self.visible_weight = float(visible_weight)
        self.dropout = float(dropout)
        self.members = int(members)
        self.linear_skip = bool(linear_skip)
        self.spec = TABLE_KINDS[kind]
        if self.linear_skip and not self.spec.corrupts_input:
            raise ValueError("linear_skip is for the denoising kind: any other kind would learn to copy its input "
                             "through it")
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
        k = self.members
        self.encoder_layers = [MemberDense(h, k, act, seed=seed_of(j), name=f"encoder_{j}")
                               for j, h in enumerate(self.hidden)]
        code_activation = self.spec.code_activation(self)
        self.code_activation = code_activation or "linear"
        width = self.spec.code_width(self)
        self.code_layer = MemberDense(width, k, code_activation, seed=seed_of(50), name="code")
        self.decoder_layers = [MemberDense(h, k, act, seed=seed_of(100 + j), name=f"decoder_{j}")
                               for j, h in enumerate(reversed(self.hidden))]
        self.output_layer = MemberDense(self.n_numeric + sum(self.category_sizes), k, seed=seed_of(200),
                                        name="reconstruction")
        self.noise_seed = keras.random.SeedGenerator(seed_of(300))
        self.dropout_seed = keras.random.SeedGenerator(seed_of(400))
        # a linear path from the (partly hidden) input to the output, beside the code: per-column linear
        # regressions on the visible cells, which the nonlinear code then corrects
        self.skip_layer = (MemberDense(self.n_numeric + sum(self.category_sizes), k, seed=seed_of(500), name="skip")
                           if self.linear_skip else None)
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
        if self.skip_layer is not None:
            self.skip_layer.build((None, self.input_dim))
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
        """(rows, [members,] p + q) values and mask -> (rows, [members,] input_dim)."""
        p = self.n_numeric
        parts = []
        if p:
            parts += [values[..., :p], mask[..., :p]]
        for j, size in enumerate(self.category_sizes):
            index = ops.cast(values[..., p + j], "int32")
            parts.append(ops.one_hot(ops.maximum(index, 0), size) * mask[..., p + j:p + j + 1])
        return ops.concatenate(parts, axis=-1)

    def _corrupt(self, values, mask):
        """Each member's copy of the rows with a share ``corruption`` of the cells hidden: (rows, members, p + q)."""
        shape = (ops.shape(mask)[0], self.members, ops.shape(mask)[1])
        keep = ops.cast(keras.random.uniform(shape, seed=self.noise_seed) >= self.corruption, "float32")
        return values[:, None, :] * keep, mask[:, None, :] * keep

    # --- encoder and decoder -----------------------------------------------------------
    def _dropped(self, h, training):
        if training and self.dropout > 0:
            return keras.random.dropout(h, self.dropout, seed=self.dropout_seed)
        return h

    def _encode_input(self, v, training=False):
        """Pre-activations and activations of every encoder layer, and the code layer's output
        (with dropout after each hidden layer when ``training``)."""
        pre, post, h = [], [], v
        for layer in self.encoder_layers:
            a = layer.linear(h)
            h = layer.activation(a)
            pre.append(a)
            post.append(h)
            h = self._dropped(h, training)
        a = self.code_layer.linear(h)
        return pre, post, a, self.code_layer.activation(a)

    def encode(self, inputs):
        """The code of each row, (rows, code_dim): the first member's (for the variational kind, its mean)."""
        return self.member_codes(inputs)[:, 0, :]

    def member_codes(self, inputs):
        """Every member's code of each row, (rows, members, code_dim)."""
        values, mask = self.preprocess(inputs)
        _, _, _, code = self._encode_input(self._encoder_input(values, mask))
        return code[..., : self.code_dim]

    def decode(self, z, training=False):
        """Codes, (rows, code_dim) shared by the members or (rows, members, code_dim) -> (rows, members, outputs)."""
        h = z
        for layer in self.decoder_layers:
            h = self._dropped(layer(h), training)
        return self.output_layer(h)

    def jacobian_norm(self, inputs):
        """``||d code / d encoder input||_F^2`` of each row, exactly (chain rule through the layers), averaged
        over the members."""
        values, mask = self.preprocess(inputs)
        return self._jacobian_norm(self._encoder_input(values, mask))

    def _jacobian_norm(self, v):
        pre, post, a_code, code = self._encode_input(v)
        deriv = _DERIVATIVES[self.activation_name]
        code_deriv = _DERIVATIVES[self.code_activation](a_code, code)[..., : self.code_dim]
        # G = d code / d h_L, (rows, members, code, h_L); then back through each layer to the input
        G = code_deriv[..., None] * ops.transpose(self.code_layer.kernel[:, :, : self.code_dim], (0, 2, 1))[None]
        for layer, a, h in reversed(list(zip(self.encoder_layers, pre, post))):
            G = ops.einsum("bkch,kih->bkci", G * deriv(a, h)[:, :, None, :], layer.kernel)
        return ops.mean(ops.sum(ops.square(G), axis=(2, 3)), axis=1)

    # --- forward -----------------------------------------------------------------------
    def call(self, inputs, training=False):
        values, mask = self.preprocess(inputs)
        clean_values, clean_mask = values, mask
        denoising = training and self.spec.corrupts_input and self.corruption > 0
        if denoising:
            values, mask = self._corrupt(values, mask)
        v = self._encoder_input(values, mask)
        _, _, _, code = self._encode_input(v, training=training)
        # penalties: each member's, averaged over members (as its reconstruction loss is)
        code = self.spec.code(self, code, training)
        if training:
            penalty = self.spec.penalty(self, code, v)
            if penalty is not None:
                self.add_loss(penalty)
        output = self.decode(code, training=training)
        if self.skip_layer is not None:
            output = output + self.skip_layer.linear(v)
        if denoising and self.visible_weight < 1.0:
            # compute_loss weights every observed cell by visible_weight; the cells hidden here get the rest
            hidden = clean_mask[:, None, :] * (1.0 - mask)
            hidden_loss = ops.mean(ops.sum(self.cell_losses(clean_values, hidden, output), axis=-1))
            self.add_loss((1.0 - self.visible_weight) * hidden_loss)
        return output if training else self._average(output)

    def _average(self, output):
        """The members' outputs (rows, members, outputs) -> the ensemble's (rows, outputs): the mean of the numeric
        reconstructions, the log of the mean probability of each category."""
        p = self.n_numeric
        parts = [ops.mean(output[..., :p], axis=1)] if p else []
        start = p
        for size in self.category_sizes:
            log_p = ops.log_softmax(output[..., start:start + size], axis=-1)
            parts.append(ops.logsumexp(log_p, axis=1) - ops.log(float(self.members)))
            start += size
        return ops.concatenate(parts, axis=-1)

    def cell_losses(self, values, mask, output):
        """Loss of every cell: ``0.5 * squared error`` (numeric), cross-entropy (categorical); 0 where masked.

        ``values`` and ``mask`` are (rows, p + q); ``output`` is the ensemble's (rows, outputs), giving (rows, p + q),
        or the members' (rows, members, outputs), giving (rows, members, p + q); ``mask`` may have the members axis.
        """
        if len(output.shape) == 3:
            values = values[:, None, :]
            if len(mask.shape) == 2:
                mask = mask[:, None, :]
        p = self.n_numeric
        parts = []
        if p:
            parts.append(0.5 * ops.square(values[..., :p] - output[..., :p]))
        start = p
        for j, size in enumerate(self.category_sizes):
            logits = output[..., start:start + size]
            index = ops.maximum(ops.cast(values[..., p + j], "int32"), 0)
            log_p = ops.log_softmax(logits, axis=-1)
            parts.append(-ops.sum(ops.one_hot(index, size) * log_p, axis=-1, keepdims=True))
            start += size
        return ops.concatenate(parts, axis=-1) * mask

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        values, mask = self.preprocess(x)
        if y is not None:  # validation: score the cells observed in y but hidden in x
            target_values, target_mask = self.preprocess(y)
            values, mask = target_values, target_mask * (1.0 - mask)
        recon = ops.mean(ops.sum(self.cell_losses(values, mask, y_pred), axis=-1))  # over rows (and members)
        self.reconstruction_tracker.update_state(recon)
        loss = recon
        if training and y is None and self.spec.corrupts_input and self.corruption > 0:
            loss = self.visible_weight * recon  # the hidden cells' share is in self.losses (see call)
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

    @property
    def scores_hidden_cells(self) -> bool:
        """Whether :meth:`row_scores` predicts each cell with it hidden: a denoising network trained with
        ``visible_weight < 1`` learned to predict the cells it cannot see, not to copy the ones it can."""
        return self.spec.corrupts_input and self.corruption > 0 and self.visible_weight < 1.0

    def _infer(self, values, mask):
        """The ensemble's inference output from preprocessed values and mask."""
        v = self._encoder_input(values, mask)
        code = self._encode_input(v)[3][..., : self.code_dim]
        output = self.decode(code)
        if self.skip_layer is not None:
            output = output + self.skip_layer.linear(v)
        return self._average(output)

    def row_scores(self, inputs):
        """Mean cell loss over each row's observed cells (NaN for a row with none): the anomaly score.

        When :attr:`scores_hidden_cells`, each cell's loss is that of predicting it while hidden, as in
        training: the columns are split into ``ceil(1 / corruption)`` interleaved groups (column ``j`` in group
        ``j mod groups``) and each group's cells are predicted from the rest of the row, one pass per group.
        """
        values, mask = self.preprocess(inputs)
        if not self.scores_hidden_cells:
            losses = self.cell_losses(values, mask, self._infer(values, mask))
        else:
            groups = int(math.ceil(1.0 / self.corruption - 1e-9))
            group = ops.arange(ops.shape(mask)[1]) % groups
            losses = 0.0
            for g in range(groups):
                hide = ops.cast(group == g, mask.dtype)[None, :]
                output = self._infer(values * (1.0 - hide), mask * (1.0 - hide))
                losses = losses + self.cell_losses(values, mask * hide, output)
        return ops.sum(losses, axis=1) / ops.sum(mask, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(numeric_mean=self.numeric_mean, numeric_variance=self.numeric_variance,
                      vocabularies=self.vocabularies, kind=self.kind, hidden=list(self.hidden),
                      code_dim=self.code_dim, activation=self.activation_name, corruption=self.corruption,
                      sparsity=self.sparsity, sparsity_target=self.sparsity_target,
                      sparsity_penalty=self.sparsity_penalty, contraction=self.contraction, beta=self.beta,
                      visible_weight=self.visible_weight, dropout=self.dropout, members=self.members,
                      linear_skip=self.linear_skip, seed=self.seed)
        return config
