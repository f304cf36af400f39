"""`ContentNetwork`: an item's raw features -> its code ``[W_i, b_i]`` in a recommender's item space.

The input is a dict of arrays (no DataFrames here; see :func:`aerec.features.feature_arrays`):
``"text:<name>"`` strings, ``"categorical:<name>"`` strings (n, 1), ``"multilabel:<name>"``
strings (n, m) padded with ``""``, ``"numeric"`` floats (n, q) with NaN where missing, and
``"vector:<name>"`` floats (n, dim). Preprocessing lives inside the model, built from statistics
given at construction (so a saved model reads raw values and its config says everything it
learned from the feature table):

- text: ``TextVectorization`` in TF-IDF mode (the vector L2-normalised, as in the usual TF-IDF
  weighting) or token ids into a learned ``Embedding`` averaged over the title (``text_mode``);
- categorical and multi-label: ``StringLookup`` multi-hot vectors (one slot for unseen values);
- numeric: ``Normalization`` (missing cells at the mean, with an indicator) and, with
  ``numeric_bins``, a one-hot of the value's quantile bin (``Discretization``), so that even a
  linear head can weigh e.g. an item's age non-linearly;
- vectors (e.g. image codes): ``Normalization`` per dimension.

The features then go through optional hidden ReLU layers to a linear output of ``code_dim + 1``
units: the item code ``W_i`` and its bias ``b_i``, the same shape as a row of the recommender's
output layer, so that ``h_u · W_i + b_i`` scores the item for a user of that recommender.

Training (driven by :class:`aerec.recommend.content.ContentModel`):

- :func:`ridge_output` sets a linear network's output layer to the ridge regression of the
  collaborative codes on the features, in closed form;
- :class:`SoftmaxTrainer` trains the network so that the score ``h_u · f(x_i)`` itself ranks
  each user's held-out items among all trainable items (multinomial likelihood, the user codes
  ``h_u`` held fixed): :func:`masked_multinomial_nll` is its loss.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

__all__ = ["ContentNetwork", "SoftmaxTrainer", "masked_multinomial_nll", "feature_statistics", "ridge_output",
           "TEXT_MODES"]

TEXT_MODES = ("tfidf", "embedding")


def _input_keys(columns: dict) -> dict:
    return {
        "text": [f"text:{c}" for c in columns.get("text", ())],
        "categorical": [f"categorical:{c}" for c in columns.get("categorical", ())],
        "multilabel": [f"multilabel:{c}" for c in columns.get("multilabel", ())],
        "vector": [f"vector:{c}" for c in columns.get("vector", ())],
    }


def feature_statistics(arrays: dict, columns: dict, max_tokens: int = 20000, min_df: int = 2,
                       numeric_bins: int = 0) -> dict:
    """What the preprocessing layers need, computed from raw feature arrays (JSON-able lists).

    Text: the tokens (Keras' default standardisation and whitespace split) found in at least
    ``min_df`` items, the ``max_tokens`` most frequent, with IDF ``log(1 + n / (1 + df))`` (Keras'
    TF-IDF weighting). Labels: every value seen, most frequent first. Numeric and vectors: mean
    and variance of the observed values and, with ``numeric_bins``, quantile bin boundaries.
    """
    keys = _input_keys(columns)
    stats = {}
    for key in keys["text"]:
        docs = np.asarray(arrays[key]).astype(str)
        counter = layers.TextVectorization(output_mode="multi_hot")
        counter.adapt(docs)
        vocabulary = [str(t) for t in counter.get_vocabulary()[1:]]  # [UNK] first
        df = np.asarray(counter(docs)).sum(axis=0)[1:] if vocabulary else np.zeros(0)
        keep = np.flatnonzero(df >= min_df)
        keep = keep[np.argsort(-df[keep], kind="stable")][:max_tokens]
        stats[key] = {"vocabulary": [vocabulary[j] for j in keep],
                      "idf": [float(np.log1p(len(docs) / (1.0 + df[j]))) for j in keep]}
    for key in keys["categorical"] + keys["multilabel"]:
        values = np.asarray(arrays[key]).astype(str).ravel()
        values = values[values != ""]
        uniq, counts = np.unique(values, return_counts=True)
        order = np.lexsort((uniq, -counts))
        stats[key] = {"vocabulary": [str(v) for v in uniq[order]]}
    if "numeric" in arrays:
        stats["numeric"] = _moments(arrays["numeric"], numeric_bins)
    for key in keys["vector"]:
        stats[key] = _moments(arrays[key], 0)
    return stats


def _moments(values: np.ndarray, bins: int) -> dict:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        observed = ~np.isnan(values)
        count = observed.sum(axis=0)
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
        var = np.where(count > 1, np.nansum((values - mean) ** 2, axis=0) / np.maximum(count, 1), 1.0)
    var = np.where(var > 1e-12, var, 1.0)
    out = {"mean": mean.tolist(), "variance": var.tolist()}
    if bins:
        edges = []
        for j in range(values.shape[1]):
            column = values[observed[:, j], j]
            qs = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1])) if column.size else np.zeros(0)
            edges.append([float(q) for q in qs])
        out["bins"] = edges
    return out


@keras.saving.register_keras_serializable(package="aerec")
class ContentNetwork(keras.Model):
    """Item features in, item code ``[W_i, b_i]`` (``code_dim + 1`` numbers) out.

    Parameters
    ----------
    columns : dict
        Feature column names by role (``text``, ``categorical``, ``multilabel``, ``numeric``,
        ``vector``), as :meth:`aerec.features.FeatureColumns.to_json` writes them.
    statistics : dict
        Vocabularies, IDF weights, means, variances and bins (:func:`feature_statistics`).
    code_dim : int
        Width of the recommender's item codes (its user code ``h_u``).
    hidden : tuple of int, default ()
        Widths of hidden ReLU layers between the features and the code; () for a linear map.
    text_mode : {"tfidf", "embedding"}, default "tfidf"
    embedding_dim : int, default 32
        ``text_mode="embedding"``: width of the learned token embeddings.
    sequence_length : int, default 16
        ``text_mode="embedding"``: tokens read per text cell.
    dropout : float, default 0.0
        Dropout on the features in training.
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay * sum(w ** 2)`` on every kernel and embedding.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> cols = {"text": ["title"], "multilabel": ["genres"], "numeric": ["year"]}
    >>> arrays = {"text:title": np.array(["a b", "b c", "a c"]), "multilabel:genres": np.array([["x"], ["y"], ["x"]]),
    ...           "numeric": np.array([[1990.0], [np.nan], [1995.0]], "float32")}
    >>> net = ContentNetwork(cols, feature_statistics(arrays, cols, min_df=1), code_dim=4, seed=0)
    >>> tuple(net(arrays).shape)
    (3, 5)
    """

    def __init__(self, columns: dict, statistics: dict, code_dim: int, hidden=(), text_mode: str = "tfidf",
                 embedding_dim: int = 32, sequence_length: int = 16, dropout: float = 0.0, weight_decay: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if text_mode not in TEXT_MODES:
            raise ValueError(f"text_mode must be one of {TEXT_MODES}, got {text_mode!r}")
        self.columns = {role: [str(c) for c in names] for role, names in columns.items() if isinstance(names, (list, tuple))
                        and role in ("text", "categorical", "multilabel", "numeric", "vector")}
        self.statistics = statistics
        self.code_dim = int(code_dim)
        self.hidden = tuple(int(h) for h in ((hidden,) if isinstance(hidden, int) else hidden) if int(h) > 0)
        self.text_mode = text_mode
        self.embedding_dim = int(embedding_dim)
        self.sequence_length = int(sequence_length)
        self.dropout_rate = float(dropout)
        self.weight_decay = float(weight_decay)
        self.seed = seed
        self.keys = _input_keys(self.columns)
        self.has_numeric = bool(self.columns.get("numeric"))

        regularizer = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None

        def init(j):
            return keras.initializers.GlorotUniform(seed=None if seed is None else seed + j)

        self.text_layers, self.embeddings = {}, {}
        for j, key in enumerate(self.keys["text"]):
            vocab = statistics[key]["vocabulary"]
            if text_mode == "tfidf":
                self.text_layers[key] = layers.TextVectorization(
                    output_mode="tf_idf", vocabulary=vocab or None, idf_weights=statistics[key]["idf"] or None,
                    name=f"tfidf_{j}") if vocab else None
            else:
                self.text_layers[key] = layers.TextVectorization(
                    output_mode="int", vocabulary=vocab or None, output_sequence_length=self.sequence_length,
                    name=f"tokens_{j}") if vocab else None
                self.embeddings[key] = layers.Embedding(
                    len(vocab) + 2, self.embedding_dim, mask_zero=False, embeddings_regularizer=regularizer,
                    embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05, seed=None if seed is None else seed + 500 + j),
                    name=f"embedding_{j}")
        self.lookups = {key: layers.StringLookup(vocabulary=statistics[key]["vocabulary"], mask_token="",
                                                 num_oov_indices=1, output_mode="multi_hot", name=f"lookup_{j}")
                        for j, key in enumerate(self.keys["categorical"] + self.keys["multilabel"])}
        self.normalizers = {}
        if self.has_numeric:
            self.normalizers["numeric"] = layers.Normalization(mean=statistics["numeric"]["mean"],
                                                               variance=statistics["numeric"]["variance"],
                                                               name="standardise_numeric")
            self.bin_layers = [layers.Discretization(bin_boundaries=edges, name=f"bins_{j}") if edges else None
                               for j, edges in enumerate(statistics["numeric"].get("bins", []))]
        else:
            self.bin_layers = []
        for j, key in enumerate(self.keys["vector"]):
            self.normalizers[key] = layers.Normalization(mean=statistics[key]["mean"], variance=statistics[key]["variance"],
                                                         name=f"standardise_vector_{j}")
        self.feature_dropout = layers.Dropout(self.dropout_rate, seed=None if seed is None else seed + 900)
        self.hidden_layers = [layers.Dense(h, activation="relu", kernel_regularizer=regularizer, kernel_initializer=init(j),
                                           name=f"hidden_{j}") for j, h in enumerate(self.hidden)]
        self.output_layer = layers.Dense(self.code_dim + 1, kernel_regularizer=regularizer, kernel_initializer=init(100),
                                         name="item_code")

    # --- sizes ---------------------------------------------------------------------------
    @property
    def dense_dim(self) -> int:
        """Width of the fixed (non-trainable) preprocessed features."""
        width = 0
        if self.text_mode == "tfidf":
            width += sum(len(self.statistics[k]["vocabulary"]) for k in self.keys["text"])
        width += sum(len(self.statistics[k]["vocabulary"]) + 1 for k in self.keys["categorical"] + self.keys["multilabel"])
        if self.has_numeric:
            q = len(self.statistics["numeric"]["mean"])
            width += 2 * q + sum(len(edges) + 1 for edges in self.statistics["numeric"].get("bins", []))
        width += sum(len(self.statistics[k]["mean"]) + 1 for k in self.keys["vector"])
        return width

    @property
    def input_dim(self) -> int:
        """Width of what the first trainable layer reads: the preprocessed features and pooled text embeddings."""
        return self.dense_dim + (self.embedding_dim * len(self.embeddings) if self.text_mode == "embedding" else 0)

    def build(self, input_shape=None):
        for key, layer in self.embeddings.items():
            layer.build((None, self.sequence_length))
        width = self.input_dim
        for layer, units in zip(self.hidden_layers, self.hidden):
            layer.build((None, width))
            width = units
        self.output_layer.build((None, width))
        self.built = True

    # --- preprocessing (fixed) -------------------------------------------------------------
    def preprocess(self, inputs) -> tuple:
        """``(dense, tokens)``: the fixed features (n, dense_dim) and, for learned text embeddings, the
        token ids of each text column (n, sequence_length), 0 for padding and 1 for unknown tokens."""
        parts, tokens, n = [], {}, None
        for key in self.keys["text"]:
            layer = self.text_layers[key]
            strings = inputs[key]
            n = ops.shape(strings)[0]
            if self.text_mode == "tfidf":
                if layer is None:
                    continue
                weights = ops.cast(layer(strings), "float32")[:, 1:]  # the unknown-token slot is left out
                norm = ops.sqrt(ops.sum(ops.square(weights), axis=1, keepdims=True))
                parts.append(weights / ops.maximum(norm, 1e-12))
            else:
                ids = layer(strings) if layer is not None else ops.zeros((n, self.sequence_length), "int64")
                tokens[key] = ops.cast(ids, "int32")
        for key in self.keys["categorical"] + self.keys["multilabel"]:
            parts.append(ops.cast(self.lookups[key](inputs[key]), "float32"))
        if self.has_numeric:
            raw = ops.cast(inputs["numeric"], "float32")
            observed = ops.logical_not(ops.isnan(raw))
            mean = ops.convert_to_tensor(np.asarray(self.statistics["numeric"]["mean"], "float32"))
            filled = ops.where(observed, raw, mean[None, :] + ops.zeros_like(raw))
            parts.append(self.normalizers["numeric"](filled))
            parts.append(1.0 - ops.cast(observed, "float32"))
            for j, layer in enumerate(self.bin_layers):
                if layer is not None:
                    bins = len(self.statistics["numeric"]["bins"][j]) + 1
                    parts.append(ops.one_hot(ops.cast(layer(filled[:, j:j + 1])[:, 0], "int32"), bins))
        for key in self.keys["vector"]:
            raw = ops.cast(inputs[key], "float32")
            missing = ops.any(ops.isnan(raw), axis=1, keepdims=True)
            z = self.normalizers[key](ops.where(ops.isnan(raw), ops.zeros_like(raw), raw))
            parts.append(ops.where(missing, ops.zeros_like(z), z))
            parts.append(ops.cast(missing, "float32"))
        if not parts:
            dense = ops.zeros((n if n is not None else 0, 0), "float32")
        else:
            dense = ops.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return dense, tokens

    # --- the trainable map -----------------------------------------------------------------
    def encode(self, dense, tokens=None, training: bool = False):
        """Item codes ``[W_i, b_i]`` (n, code_dim + 1) from preprocessed features."""
        if not self.built:
            self.build()
        x = dense
        if self.text_mode == "embedding":
            pooled = []
            for key in self.keys["text"]:
                ids = tokens[key]
                present = ops.cast(ids > 0, "float32")[:, :, None]
                vectors = self.embeddings[key](ids) * present
                pooled.append(ops.sum(vectors, axis=1) / ops.maximum(ops.sum(present, axis=1), 1.0))
            x = ops.concatenate([x, *pooled], axis=1) if pooled else x
        x = self.feature_dropout(x, training=training)
        for layer in self.hidden_layers:
            x = layer(x)
        return self.output_layer(x)

    def call(self, inputs, training: bool = False):
        dense, tokens = self.preprocess(inputs)
        return self.encode(dense, tokens, training=training)

    def get_config(self):
        config = super().get_config()
        config.update({
            "columns": self.columns, "statistics": self.statistics, "code_dim": self.code_dim,
            "hidden": list(self.hidden), "text_mode": self.text_mode, "embedding_dim": self.embedding_dim,
            "sequence_length": self.sequence_length, "dropout": self.dropout_rate, "weight_decay": self.weight_decay,
            "seed": self.seed,
        })
        return config


def ridge_output(network: ContentNetwork, dense: np.ndarray, targets: np.ndarray, l2: float) -> None:
    """Set a linear network's output layer to the ridge regression of ``targets`` on the features ``dense``.

    Minimises ``||dense_c K - targets_c||² + l2 ||K||²`` on centred data (the intercept is not
    penalised): the closed form of "regress the collaborative codes on the features".
    """
    if network.hidden or network.text_mode != "tfidf":
        raise ValueError("ridge regression needs a linear network on fixed features (hidden=(), text_mode='tfidf')")
    if not network.built:
        network.build()
    X = np.asarray(dense, dtype=np.float64)
    Y = np.asarray(targets, dtype=np.float64)
    x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
    Xc, Yc = X - x_mean, Y - y_mean
    p = X.shape[1]
    if p <= X.shape[0]:
        kernel = np.linalg.solve(Xc.T @ Xc + l2 * np.eye(p), Xc.T @ Yc)
    else:  # fewer items than features: solve in the items' space
        kernel = Xc.T @ np.linalg.solve(Xc @ Xc.T + l2 * np.eye(X.shape[0]), Yc)
    bias = y_mean - x_mean @ kernel
    network.output_layer.kernel.assign(kernel.astype(np.float32))
    network.output_layer.bias.assign(bias.astype(np.float32))


def masked_multinomial_nll(y_true, logits):
    """Multinomial negative log-likelihood of each row's targets, some items masked out.

    ``y_true`` holds 1 for a target item, -1 for an item left out of the softmax (the user's
    input items, which are not to be predicted) and 0 otherwise.
    """
    y_true = ops.cast(y_true, logits.dtype)
    logits = ops.where(y_true < 0, ops.full_like(logits, -1e9), logits)
    log_p = ops.log_softmax(logits, axis=-1)
    return -ops.sum(ops.where(y_true > 0, y_true * log_p, ops.zeros_like(log_p)), axis=-1)


class SoftmaxTrainer(keras.Model):
    """Scores a batch of fixed user codes against the codes of the trainable items: ``h_u · f(x_i)``.

    ``dense`` and ``tokens`` are the trainable items' preprocessed features (constants); the
    logits are ``h @ W(x).T + b(x)``, so that training with :func:`masked_multinomial_nll`
    trains the content network's scores directly. Not saved: only ``network`` is.
    """

    def __init__(self, network: ContentNetwork, dense, tokens: dict, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.item_dense = ops.convert_to_tensor(np.asarray(dense, dtype=np.float32))
        self.item_tokens = {k: ops.convert_to_tensor(np.asarray(v, dtype=np.int32)) for k, v in tokens.items()}

    def call(self, h, training: bool = False):
        codes = self.network.encode(self.item_dense, self.item_tokens, training=training)
        return ops.matmul(h, ops.transpose(codes[:, :-1])) + codes[:, -1][None, :]

