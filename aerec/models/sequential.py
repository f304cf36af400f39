"""`SequentialDenoisingAutoencoder`: a bidirectional self-attention denoising autoencoder over ordered item sequences.

The Cloze objective of BERT4Rec (Sun et al., 2019): random items of a user's sequence are replaced
by a mask token and reconstructed from both sides. Tokens are ``0`` (padding, on the left),
``1..n_items`` (item ``i`` is token ``i + 1``) and ``n_items + 1`` (the mask). The network embeds the
tokens (the item embedding is tied with the output layer), adds learned position embeddings, and
runs ``n_layers`` post-LayerNorm Transformer blocks (multi-head self-attention over the non-padding
positions, a GELU feed-forward layer of width ``4 * code_dim``, dropout and residuals).

The logit of item ``i`` at a position with hidden state ``h`` is ``h · E_{i+1} + b_i``, with ``E``
the token embedding: the item codes are the embedding rows of the items and the output bias
(:meth:`SequentialDenoisingAutoencoder.item_vectors`), and the user code is the hidden state at a
mask token appended after the user's sequence (:meth:`SequentialDenoisingAutoencoder.user_code`).

Training (``keras.Model.fit``) takes ``x = (tokens, positions)``, ``y = targets`` and
``sample_weight``: the loss is read only at the masked ``positions`` (``(batch, P)`` indices into
the sequence), whose items are ``targets``; ``sample_weight`` is 0 for padding entries of
``positions``. The loss is ``Σ weight · nll`` over the batch divided by its number of sequences, so the
weights say how much each target counts: shares of 1 per sequence (Cloze), or one constant per target
(next item), which keeps the targets of a batch of short histories from weighing more than those of a
batch of long ones. By default the loss is the full softmax over the catalogue; with
``sampled_softmax=S`` it is a sampled softmax over the target and ``S`` negatives drawn uniformly
per batch (shared by every position, accidental hits masked). The logQ correction subtracts
``log Q(j)`` from each logit; with uniform sampling ``Q(j) = S / n_items`` is the same for every
item, so the correction is a constant shift that leaves the softmax unchanged: it is written out so
that a non-uniform sampler only has to change ``Q``.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

__all__ = ["SequentialDenoisingAutoencoder", "TransformerBlock"]


@keras.saving.register_keras_serializable(package="aerec")
class TransformerBlock(layers.Layer):
    """Post-LayerNorm Transformer encoder block: self-attention and a feed-forward layer, each with dropout and a residual.

    Parameters
    ----------
    width : int
        Width of the input and output.
    n_heads : int
        Attention heads (each of width ``width // n_heads``, at least 1).
    dropout : float
        Dropout rate on the attention weights and on both residual branches.
    seed : int, optional
        Seed of the initial weights and the dropout masks.

    Examples
    --------
    >>> import numpy as np
    >>> block = TransformerBlock(8, n_heads=2, dropout=0.0, seed=0)
    >>> tuple(block(np.zeros((2, 5, 8), "float32"), np.ones((2, 5), bool)).shape)
    (2, 5, 8)
    """

    def __init__(self, width: int, n_heads: int = 2, dropout: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.width, self.n_heads, self.dropout_rate, self.seed = int(width), int(n_heads), float(dropout), seed

        def s(j):
            return None if seed is None else seed + j

        self.attention = layers.MultiHeadAttention(
            self.n_heads, max(1, self.width // self.n_heads), dropout=self.dropout_rate, seed=s(0),
            kernel_initializer=keras.initializers.GlorotUniform(seed=s(1)), name="attention")
        self.attention_dropout = layers.Dropout(self.dropout_rate, seed=s(2))
        self.attention_norm = layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.hidden = layers.Dense(4 * self.width, activation="gelu", name="feed_forward_hidden",
                                   kernel_initializer=keras.initializers.GlorotUniform(seed=s(3)))
        self.projection = layers.Dense(self.width, name="feed_forward_output",
                                       kernel_initializer=keras.initializers.GlorotUniform(seed=s(4)))
        self.feed_forward_dropout = layers.Dropout(self.dropout_rate, seed=s(5))
        self.feed_forward_norm = layers.LayerNormalization(epsilon=1e-6, name="feed_forward_norm")

    def build(self, x_shape, keep_shape=None):
        if self.built:
            return
        input_shape = tuple(x_shape)
        self.attention.build(input_shape, input_shape)
        self.attention_norm.build(input_shape)
        self.hidden.build(input_shape)
        self.projection.build(tuple(input_shape[:-1]) + (4 * self.width,))
        self.feed_forward_norm.build(input_shape)
        self.built = True

    def call(self, x, keep, causal=False, training=False, return_scores=False):
        """``x``: (batch, length, width); ``keep``: (batch, length) bool, False at padding (never attended to);
        ``causal``: each position attends only to itself and the positions before it. With ``return_scores``,
        also the attention weights, (batch, heads, length, length)."""
        attend = ops.logical_and(ops.expand_dims(keep, 1), ops.ones_like(ops.expand_dims(keep, 2)))
        a, scores = self.attention(x, x, attention_mask=attend, use_causal_mask=causal, training=training,
                                   return_attention_scores=True)
        x = self.attention_norm(x + self.attention_dropout(a, training=training))
        f = self.projection(self.hidden(x))
        x = self.feed_forward_norm(x + self.feed_forward_dropout(f, training=training))
        return (x, scores) if return_scores else x

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, n_heads=self.n_heads, dropout=self.dropout_rate, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="aerec")
class SequentialDenoisingAutoencoder(keras.Model):
    """Self-attention network over ordered sequences: bidirectional for BERT4Rec's Cloze task, causal for next-item training.

    Parameters
    ----------
    n_items : int
        Items in the catalogue (tokens ``1..n_items``; ``0`` pads, ``n_items + 1`` masks).
    max_length : int, default 200
        Longest sequence (the number of learned positions).
    code_dim : int, default 64
        Width of the embeddings and hidden states (the user and item codes).
    n_layers : int, default 2
        Transformer blocks.
    n_heads : int, default 2
        Attention heads per block.
    dropout : float, default 0.2
        Dropout after the embeddings, on attention weights and on the residual branches.
    sampled_softmax : int, optional
        Train with a sampled softmax over this many uniform negatives instead of the full softmax.
    causal : bool, default False
        Each position attends only to itself and the positions before it (left to right, as SASRec):
        the hidden state at a position is then a prediction of the next item from the items up to it.
    seed : int, optional
        Seed of the initial weights, dropout masks and sampled negatives.

    Examples
    --------
    >>> import numpy as np
    >>> net = SequentialDenoisingAutoencoder(n_items=6, max_length=4, code_dim=8, n_layers=1, seed=0)
    >>> tokens = np.array([[0, 2, 3, 7], [1, 2, 3, 7]])  # 7 = the mask token
    >>> tuple(net.user_code(tokens).shape), tuple(net.item_vectors()[0].shape)
    ((2, 8), (6, 8))
    """

    def __init__(self, n_items: int, max_length: int = 200, code_dim: int = 64, n_layers: int = 2, n_heads: int = 2,
                 dropout: float = 0.2, sampled_softmax: int | None = None, causal: bool = False,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.max_length = int(max_length)
        self.code_dim = int(code_dim)
        self.n_layers = int(n_layers)
        self.n_heads = int(n_heads)
        self.dropout_rate = float(dropout)
        self.sampled_softmax = None if sampled_softmax is None else int(sampled_softmax)
        self.causal = bool(causal)
        self.seed = seed

        def s(j):
            return None if seed is None else seed + 100 * j

        init = keras.initializers.TruncatedNormal(stddev=0.02, seed=s(1))
        self.token_embedding = layers.Embedding(self.n_items + 2, self.code_dim, embeddings_initializer=init,
                                                name="token_embedding")
        self.position_embedding = layers.Embedding(
            self.max_length, self.code_dim, name="position_embedding",
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02, seed=s(2)))
        self.embedding_norm = layers.LayerNormalization(epsilon=1e-6, name="embedding_norm")
        self.embedding_dropout = layers.Dropout(self.dropout_rate, seed=s(3))
        self.blocks = [TransformerBlock(self.code_dim, self.n_heads, self.dropout_rate, seed=s(4 + j),
                                        name=f"block_{j}") for j in range(self.n_layers)]
        self.output_bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="output_bias")
        self.sample_seed = keras.random.SeedGenerator(s(50))

    @property
    def mask_token(self) -> int:
        return self.n_items + 1

    def build(self, input_shape=None):
        if self.built:  # fit builds again from the data's structure
            return
        self.token_embedding.build((None, self.max_length))
        self.position_embedding.build((None, self.max_length))
        self.embedding_norm.build((None, self.max_length, self.code_dim))
        for block in self.blocks:
            block.build((None, self.max_length, self.code_dim))
        self.built = True

    def _embedded(self, tokens, training=False):
        """The blocks' input (token plus position embeddings, normalised) and the non-padding mask."""
        if not self.built:  # called outside __call__ (user_code): build the whole model, not layer by layer
            self.build()
        tokens = ops.convert_to_tensor(tokens, dtype="int32")
        length = ops.shape(tokens)[1]
        # positions count from the right end, so that the last item (or the appended mask) is always
        # the same position whatever the sequence's length
        positions = ops.arange(self.max_length - length, self.max_length, dtype="int32")
        x = self.token_embedding(tokens) + ops.expand_dims(self.position_embedding(positions), 0)
        return self.embedding_dropout(self.embedding_norm(x), training=training), ops.not_equal(tokens, 0)

    def hidden_states(self, tokens, training=False):
        """Hidden state of every position: (batch, length, code_dim). Sequences are left-padded with 0."""
        x, keep = self._embedded(tokens, training=training)
        for block in self.blocks:
            x = block(x, keep, causal=self.causal, training=training)
        return x

    def last_position_attention(self, tokens):
        """The attention weights of the last position (where :meth:`user_code` is read) over every position, per
        block and head: (batch, n_layers, n_heads, length). Padding gets 0; each (block, head) row sums to 1."""
        x, keep = self._embedded(tokens)
        maps = []
        for block in self.blocks:
            x, scores = block(x, keep, causal=self.causal, return_scores=True)
            maps.append(scores[:, :, -1, :])
        return ops.stack(maps, axis=1)

    def user_code(self, tokens):
        """``h_u``: the hidden state at the last position (the mask token appended after the user's sequence;
        for a ``causal`` network, the user's most recent item)."""
        return self.hidden_states(tokens, training=False)[:, -1, :]

    def item_vectors(self):
        """``(W, b)``: the item rows of the tied token embedding and the output bias, as tensors."""
        return self.token_embedding.embeddings[1:self.n_items + 1], self.output_bias

    def call(self, inputs, training=False):
        """Logits of every item at the given positions: ``inputs = (tokens, positions)`` -> (batch, P, n_items);
        with ``sampled_softmax`` while training, the hidden states at the positions (batch, P, code_dim)."""
        tokens, positions = inputs
        h = self.hidden_states(tokens, training=training)
        h = ops.take_along_axis(h, ops.expand_dims(ops.convert_to_tensor(positions, "int32"), -1), axis=1)
        if training and self.sampled_softmax:
            return h
        W, b = self.item_vectors()
        return ops.matmul(h, ops.transpose(W)) + b

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        targets = ops.convert_to_tensor(y, "int32")
        weight = ops.ones_like(y_pred[..., 0]) if sample_weight is None else ops.cast(sample_weight, "float32")
        if training and self.sampled_softmax:
            W, b = self.item_vectors()
            negatives = keras.random.randint((self.sampled_softmax,), 0, self.n_items, seed=self.sample_seed,
                                             dtype="int32")
            positive = ops.sum(y_pred * ops.take(W, targets, axis=0), axis=-1) + ops.take(b, targets)
            negative = ops.matmul(y_pred, ops.transpose(ops.take(W, negatives, axis=0))) + ops.take(b, negatives)
            log_q = math.log(self.sampled_softmax / self.n_items)  # uniform Q: the same for every item
            hit = ops.equal(ops.expand_dims(targets, -1), negatives)
            negative = ops.where(hit, -1e9, negative - log_q)
            logits = ops.concatenate([ops.expand_dims(positive - log_q, -1), negative], axis=-1)
            nll = -ops.log_softmax(logits, axis=-1)[..., 0]
        else:
            log_p = ops.log_softmax(y_pred, axis=-1)
            nll = -ops.squeeze(ops.take_along_axis(log_p, ops.expand_dims(targets, -1), axis=-1), -1)
        if sample_weight is None:
            return ops.mean(nll)
        # per sequence of the batch, not per weight of the batch: batches of short and of long histories
        # then weigh each of their targets alike (the weights carry the normalisation; see the docstring)
        return ops.sum(nll * weight) / ops.cast(ops.shape(weight)[0], "float32")

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, max_length=self.max_length, code_dim=self.code_dim,
                      n_layers=self.n_layers, n_heads=self.n_heads, dropout=self.dropout_rate,
                      sampled_softmax=self.sampled_softmax, causal=self.causal, seed=self.seed)
        return config
