"""`AutoRecNetwork`: AutoRec (Sedhain et al., 2015) with GLocal-K's kernels (Han et al., 2021) as options.

An AutoRec reconstructs one row of the rating matrix at a time: for item-based AutoRec a row is
an item and its columns are users (the item's ratings by every user, 0 where unknown); for
user-based AutoRec the other way round. The row goes through ``sigmoid`` hidden layers to a
linear output of the same width, and the loss is the squared error on the *observed* entries
only (:func:`masked_squared_error`), plus weight decay. The model knows only rows and columns;
which is which is the caller's business.

Two options follow GLocal-K:

- ``kernel_dim > 0`` makes every dense layer a :class:`LocalKernelDense`: its kernel ``W`` is
  multiplied element-wise by ``max(0, 1 - ||u_i - v_j||^2)`` for learned ``kernel_dim``-dimensional
  vectors ``u_i`` (one per input unit) and ``v_j`` (one per output unit), a learned sparsity
  pattern; ``sparsity`` penalises the squared kernel values.
- ``global_kernel_size > 0`` convolves the whole input matrix with one ``k x k`` filter (leaky
  ReLU after it) before the local network. The filter is ``row_summary @ global_weights``, where
  ``row_summary`` holds the mean prediction of each row of a first, pre-trained model (set with
  :meth:`AutoRecNetwork.set_row_summary`), and the convolution is switched on by the
  non-trainable ``global_gate`` (0 while pre-training, 1 while fine-tuning). A convolution over
  neighbouring rows needs the whole matrix in one batch, so such a model is trained full-batch.
"""
from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["AutoRecNetwork", "LocalKernelDense", "MaskedRMSE", "masked_squared_error"]


def masked_squared_error(y, mask, y_pred):
    """Mean squared error over the entries where ``mask`` is 1 (0 when there are none)."""
    sse = ops.sum(mask * ops.square(y - y_pred))
    return sse / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="aerec")
class MaskedRMSE(keras.metrics.Metric):
    """Root mean squared error over the observed entries of all batches seen (not a mean of batch RMSEs)."""

    def __init__(self, name="rmse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.sse = self.add_variable(shape=(), initializer="zeros", name="sse")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y, mask, y_pred):
        self.sse.assign_add(ops.sum(mask * ops.square(y - y_pred)))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return ops.sqrt(self.sse / ops.maximum(self.count, 1.0))


@keras.saving.register_keras_serializable(package="aerec")
class LocalKernelDense(layers.Layer):
    """A dense layer whose kernel is ``W * max(0, 1 - ||u_i - v_j||^2)`` (GLocal-K's local kernel).

    Parameters
    ----------
    units : int
    kernel_dim : int
        Dimension of the vectors ``u_i`` and ``v_j``.
    activation : str or None
    l2 : float
        Penalty ``l2 * sum(W ** 2)``.
    sparsity : float
        Penalty ``sparsity * sum(kernel ** 2)`` on the local kernel values.
    seed : int, optional
    """

    def __init__(self, units: int, kernel_dim: int, activation=None, l2: float = 0.0, sparsity: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_dim = int(kernel_dim)
        self.activation = keras.activations.get(activation)
        self.l2 = float(l2)
        self.sparsity = float(sparsity)
        self.seed = seed

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        s = self.seed

        def init(k):
            return keras.initializers.GlorotUniform(seed=None if s is None else s + k)

        self.kernel = self.add_weight(shape=(n_in, self.units), initializer=init(0), name="kernel",
                                      regularizer=keras.regularizers.L2(self.l2) if self.l2 > 0 else None)
        self.u = self.add_weight(shape=(n_in, self.kernel_dim), initializer=init(1), name="u")
        self.v = self.add_weight(shape=(self.units, self.kernel_dim), initializer=init(2), name="v")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def local_kernel(self):
        """``max(0, 1 - ||u_i - v_j||^2)``, shape (inputs, units)."""
        dist2 = (ops.sum(ops.square(self.u), axis=1)[:, None] + ops.sum(ops.square(self.v), axis=1)[None, :]
                 - 2.0 * ops.matmul(self.u, ops.transpose(self.v)))
        return ops.relu(1.0 - dist2)

    def call(self, x):
        kernel = self.local_kernel()
        if self.sparsity > 0:
            self.add_loss(self.sparsity * ops.sum(ops.square(kernel)))
        y = ops.matmul(x, self.kernel * kernel) + self.bias
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, kernel_dim=self.kernel_dim,
                      activation=keras.activations.serialize(self.activation) if self.activation else None,
                      l2=self.l2, sparsity=self.sparsity, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="aerec")
class AutoRecNetwork(keras.Model):
    """Reconstruct rating rows from their observed entries; the loss counts observed entries only.

    ``fit`` takes ``x`` = input rows (0 where unknown) and ``y = (targets, mask)``: the ratings to
    reconstruct and 1 where a target is observed. The inputs may differ from the targets (e.g.
    the training rows as input and held-out validation ratings as target). The logged ``rmse``
    is over the masked entries of the whole epoch.

    Parameters
    ----------
    n_inputs : int
        Width of a row (users for item-based AutoRec, items for user-based).
    hidden : tuple of int, default (500,)
        Widths of the hidden layers.
    activation : str, default "sigmoid"
        Activation of the hidden layers (the output is linear).
    dropout : float, default 0.0
        Dropout on every hidden layer's output in training.
    input_dropout : float, default 0.0
        Dropout on the input row in training (a denoising AutoRec).
    l2 : float, default 0.0
        Weight decay ``l2 * sum(W ** 2)`` on every kernel, added to the per-rating mean squared error.
    kernel_dim : int, default 0
        With ``kernel_dim > 0`` the layers are :class:`LocalKernelDense` (GLocal-K's local kernel).
    sparsity : float, default 0.0
        Penalty on the local kernels' squared values (only with ``kernel_dim > 0``).
    global_kernel_size : int, default 0
        Side of GLocal-K's global convolution filter (0: none). Needs ``n_rows``.
    n_rows : int, default 0
        Rows of the whole matrix (only for the global kernel).
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> net = AutoRecNetwork(n_inputs=4, hidden=(3,), seed=0)
    >>> tuple(net(np.ones((2, 4), dtype="float32")).shape)
    (2, 4)
    """

    def __init__(self, n_inputs: int, hidden=(500,), activation: str = "sigmoid", dropout: float = 0.0,
                 input_dropout: float = 0.0, l2: float = 0.0, kernel_dim: int = 0, sparsity: float = 0.0,
                 global_kernel_size: int = 0, n_rows: int = 0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_inputs = int(n_inputs)
        self.hidden = tuple(int(h) for h in ((hidden,) if isinstance(hidden, int) else hidden))
        self.activation_name = activation
        self.dropout_rate = float(dropout)
        self.input_dropout_rate = float(input_dropout)
        self.l2 = float(l2)
        self.kernel_dim = int(kernel_dim)
        self.sparsity = float(sparsity)
        self.global_kernel_size = int(global_kernel_size)
        self.n_rows = int(n_rows)
        self.seed = seed
        if self.global_kernel_size and self.n_rows <= 0:
            raise ValueError("a global kernel needs n_rows, the number of rows of the whole matrix")

        def dense(units, act, j):
            s = None if seed is None else seed + 10 * j
            if self.kernel_dim:
                return LocalKernelDense(units, self.kernel_dim, activation=act, l2=self.l2, sparsity=self.sparsity,
                                        seed=s, name=f"dense_{j}")
            return layers.Dense(units, activation=act, name=f"dense_{j}",
                                kernel_regularizer=keras.regularizers.L2(self.l2) if self.l2 > 0 else None,
                                kernel_initializer=keras.initializers.GlorotUniform(seed=s))

        self.input_drop = layers.Dropout(self.input_dropout_rate, seed=seed, name="input_dropout")
        self.hidden_layers = [dense(h, activation, j) for j, h in enumerate(self.hidden)]
        self.hidden_drops = [layers.Dropout(self.dropout_rate, seed=None if seed is None else seed + 1000 + j,
                                            name=f"dropout_{j}") for j in range(len(self.hidden))]
        self.output_layer = dense(self.n_inputs, None, len(self.hidden))
        if self.global_kernel_size:
            k2 = self.global_kernel_size ** 2
            self.global_weights = self.add_weight(
                shape=(self.n_rows, k2), name="global_weights",
                initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + 2000))
            self.row_summary = self.add_weight(shape=(self.n_rows,), initializer="zeros", trainable=False,
                                               name="row_summary")
            self.global_gate = self.add_weight(shape=(), initializer="zeros", trainable=False, name="global_gate")
        self.rmse_tracker = MaskedRMSE(name="rmse")

    def build(self, input_shape):
        width = self.n_inputs
        for layer, units in zip(self.hidden_layers, self.hidden):
            layer.build((None, width))
            width = units
        self.output_layer.build((None, width))
        self.built = True

    # --- GLocal-K's global kernel ---------------------------------------------------------
    def set_row_summary(self, values) -> None:
        """Store each row's mean pre-trained prediction and switch the global convolution on.

        The global weights are reset so that the filter starts as the identity (1 at the centre):
        fine-tuning then starts from exactly the pre-trained model's predictions. (GLocal-K starts
        from a random filter; with Adam and early stopping that start measured worse.)
        """
        summary = ops.convert_to_tensor(values, dtype="float32")
        k2 = self.global_kernel_size ** 2
        centre = ops.one_hot(k2 // 2, k2)
        self.row_summary.assign(summary)
        self.global_weights.assign(ops.outer(summary / ops.maximum(ops.sum(ops.square(summary)), 1e-12), centre))
        self.global_gate.assign(1.0)

    def switch_global_off(self) -> None:
        """Back to the pre-trained model (used when fine-tuning did not help on validation data)."""
        self.global_gate.assign(0.0)

    def global_filter(self):
        """The ``k x k`` filter of the global convolution."""
        k = self.global_kernel_size
        flat = ops.matmul(self.row_summary[None, :], self.global_weights)
        return ops.reshape(flat, (k, k, 1, 1))

    def _global_convolution(self, x):
        conv = ops.conv(x[None, :, :, None], self.global_filter(), strides=1, padding="same")[0, :, :, 0]
        conv = ops.leaky_relu(conv, negative_slope=0.2)
        return x + self.global_gate * (conv - x)

    # --- forward --------------------------------------------------------------------------
    def call(self, x, training=False):
        x = ops.convert_to_tensor(x, dtype="float32")
        if self.global_kernel_size:
            x = self._global_convolution(x)
        h = self.input_drop(x, training=training)
        for layer, drop in zip(self.hidden_layers, self.hidden_drops):
            h = drop(layer(h), training=training)
        return self.output_layer(h)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        targets, mask = y
        loss = masked_squared_error(targets, mask, y_pred)
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        targets, mask = y
        self.rmse_tracker.update_state(targets, mask, y_pred)
        return self.get_metrics_result()

    def get_config(self):
        config = super().get_config()
        config.update(n_inputs=self.n_inputs, hidden=list(self.hidden), activation=self.activation_name,
                      dropout=self.dropout_rate, input_dropout=self.input_dropout_rate, l2=self.l2,
                      kernel_dim=self.kernel_dim, sparsity=self.sparsity,
                      global_kernel_size=self.global_kernel_size, n_rows=self.n_rows, seed=self.seed)
        return config
