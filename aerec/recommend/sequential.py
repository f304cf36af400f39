"""`SequentialDAE`: next-item recommendations from ordered histories, behind the recommender contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import register
from ..data import Interactions, check_columns
from ..exceptions import DataValidationError
from ..params import Interval, Options
from ..utils import as_list, first_rows
from .keras_base import KerasRecommender, _numpy

__all__ = ["SequentialDAE"]

#: a history's own order is kept in its sparse row: the value of (user, item) is the item's place in the sequence
_PLACE = "_sequence_place"

#: the training objectives: BERT4Rec's Cloze (bidirectional) and SASRec's next item at every place (causal)
OBJECTIVES = ("cloze", "next")


@register
class SequentialDAE(KerasRecommender):
    """Self-attention network over ordered histories, for next-item recommendation (SASRec-like by default, or BERT4Rec-like).

    Each user's interactions are ordered by ``time`` (ties, and ``time=None``, by the row order of
    the frame); the most recent ``max_length`` items form the user's sequence.

    The default ``objective="next"`` trains a causal (left-to-right) Transformer (SASRec, Kang &
    McAuley, 2018, with the full softmax over the catalogue of Petrov & Macdonald, 2022): the
    state at every place of a sequence, having read the items up to it, is asked the item that
    follows (every place a target, each weighing 1), so one pass over a sequence of ``n`` items
    gives ``n - 1`` next-item lessons, the very task asked at recommendation time. The user code
    ``h_u`` is the final hidden state at the user's most recent item. It is the default because it
    is far better on next-item data: on protocol G1 (MovieLens-100K leave-last-out, seed 0) it
    reached validation NDCG@10 0.121 and test HR@10 / NDCG@10 0.211 / 0.112, against 0.11 / 0.054
    for the Cloze objective and 0.168 / 0.091 for EASE + item transitions
    (``benchmarks/results/protocol_g.md``).

    With ``objective="cloze"``, items of the sequences are replaced by a mask token with
    probability ``mask_probability`` and reconstructed from both sides by a bidirectional
    Transformer (the Cloze objective of Sun et al., 2019); a share ``last_item_share`` of the
    sequences is cut at a random place and has only the last item of that prefix masked instead,
    the task asked at recommendation time (Sun et al. add last-item samples too); each sequence
    weighs the same in the loss. The user code ``h_u`` is then the final hidden state at a mask
    token appended after the user's most recent ``max_length - 1`` items.

    Both train :class:`aerec.models.sequential.SequentialDenoisingAutoencoder` with the softmax over
    the catalogue at the places asked (``sampled_softmax=S``: over the target and ``S`` uniform
    negatives, for large catalogues). Given ``valid``, training keeps the weights of the epoch with
    the best validation NDCG@10 (a next-item task has one target). The item code is the item's
    row of the token embedding
    (tied with the output) and ``b_i`` its output bias, so ``h_u · W_i + b_i`` is the logit of
    ``i`` being the next item and the FAISS index over ``[W_i, b_i]`` returns the model's own top-K.
    :meth:`recommend_for_history` folds in a new ordered sequence (ordered by the ``time`` column
    when the history has it, else by its row order; nothing is retrained), so a training user's
    own history gives :meth:`recommend`'s list. An item repeated in a sequence counts once, at its
    last place. :meth:`top_k_for_histories` reads each list in its given order.

    Parameters
    ----------
    code_dim : int, default 64
        Width of the embeddings and hidden states (the codes).
    n_layers : int, default 2
        Transformer blocks.
    n_heads : int, default 2
        Attention heads per block.
    max_length : int, default 200
        Longest sequence: longer histories keep their most recent items.
    mask_probability : float, default 0.2
        Cloze only: share of a sequence's items masked in training.
    last_item_share : float, default 0.5
        Cloze only: share of training sequences cut at a random place with only the last item of the prefix
        masked: the task asked at recommendation time (a prediction from the left side only).
    dropout : float, default 0.2
        Dropout on the embeddings, the attention weights and the residual branches.
    sampled_softmax : int, optional
        Train with a sampled softmax over this many uniformly drawn negatives (logQ-corrected)
        instead of the full softmax over the catalogue.
    objective : {"next", "cloze"}, default "next"
        ``"cloze"``: bidirectional attention, masked items reconstructed (``mask_probability``,
        ``last_item_share``). ``"next"``: causal attention, the next item predicted at every place
        (``mask_probability`` and ``last_item_share`` unused).
    learning_rate : float, default 1e-3
        Adam's step size.
    epochs : int, default 200
        Most passes over the training users.
    batch_size : int, default 64
        Sequences per update.
    patience : int or None, default 30
        With ``valid``, stop after this many epochs without a better validation NDCG@10 (the best
        epoch's weights are kept either way); None trains all ``epochs``.
    seed : int, default 0
        Seeds weights, dropout, masking and shuffling: same seed and data, same model on a machine.
    verbose : int, default 0
        Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.

    Attributes
    ----------
    network_ : aerec.models.sequential.SequentialDenoisingAutoencoder
        The trained Keras model.
    sequences_ : ndarray of int32, shape (n_users, max_length)
        Each training user's most recent items, oldest first, as item index + 1, left-padded with 0.
    history_ : dict of lists
        Per epoch: ``loss``, ``val_ndcg@10`` and ``valid_seconds`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "b", "c", "a"], "ts": [1, 2, 1, 2, 1]})
    >>> model = SequentialDAE(code_dim=8, n_layers=1, max_length=4, epochs=2).fit(df, time="ts")
    >>> len(model.recommend_for_history(pd.DataFrame({"user": [9], "item": ["a"]}), k=2))
    2
    """

    _parameter_constraints = {
        **KerasRecommender._parameter_constraints,
        "code_dim": [Interval("int", 1, None)],
        "n_layers": [Interval("int", 1, None)],
        "n_heads": [Interval("int", 1, None)],
        "max_length": [Interval("int", 2, None)],
        "mask_probability": [Interval("real", 0, 1, closed="neither")],
        "sampled_softmax": [Interval("int", 1, None), None],
        "last_item_share": [Interval("real", 0, 1)],
        "objective": [Options(*OBJECTIVES)],
    }

    #: the validation metric of early stopping
    _validation_metric = "ndcg@10"

    def __init__(self, code_dim: int = 64, n_layers: int = 2, n_heads: int = 2, max_length: int = 200,
                 mask_probability: float = 0.2, last_item_share: float = 0.5, dropout: float = 0.2,
                 sampled_softmax: int | None = None, objective: str = "next",
                 learning_rate: float = 1e-3, epochs: int = 200, batch_size: int = 64, patience: int | None = 30,
                 seed: int = 0, verbose: int = 0):
        self.code_dim = code_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.max_length = max_length
        self.mask_probability = mask_probability
        self.last_item_share = last_item_share
        self.dropout = dropout
        self.sampled_softmax = sampled_softmax
        self.objective = objective
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    @classmethod
    def network_class(cls):
        from ..models.sequential import SequentialDenoisingAutoencoder

        return SequentialDenoisingAutoencoder

    def _build_network(self, n_users: int, n_items: int):
        network = self.network_class()(
            n_items, max_length=self.max_length, code_dim=self.code_dim, n_layers=self.n_layers,
            n_heads=self.n_heads, dropout=self.dropout, sampled_softmax=self.sampled_softmax,
            causal=self._causal, seed=self.seed)
        network.build()
        return network

    # --- fitting ---------------------------------------------------------------------------
    def fit(self, train, valid=None, user: str = "user", item: str = "item", rating: str | None = None,
            threshold: float | None = None, item_features=None, content=None, time: str | None = None):
        """Learn from ordered interactions.

        Parameters
        ----------
        train : DataFrame
            One row per interaction, with the user's own ids.
        valid : DataFrame or (DataFrame, DataFrame), optional
            As in :meth:`Recommender.fit`: held-out next items of training users, or a pair
            ``(fold_in, held_out)`` of users unseen in training (the fold-in ordered like a history).
            Training stops early on its NDCG@10.
        user, item, rating, threshold, item_features, content
            As in :meth:`Recommender.fit` (``rating``/``threshold`` only select the interactions).
        time : str, optional
            The column that orders each user's interactions (numbers, datetimes or strings of one
            kind; ties keep the row order). None: the row order of the frame is the time order.

        Returns
        -------
        self

        Raises
        ------
        MissingColumnError
            ``time`` names a column that ``train`` lacks.
        DataValidationError
            The ``time`` column has missing values or values that cannot be sorted together.
        """
        check_columns(train, [user, item] + ([time] if time is not None else []), "train")
        order = _time_order(train, time, "train")
        self._time_column = time
        self._ordered_train = train.iloc[order][[user, item]]
        try:
            return super().fit(train.iloc[order], valid, user=user, item=item, rating=rating, threshold=threshold,
                               item_features=item_features, content=content)
        finally:
            del self._ordered_train

    def _validation_data(self, valid):
        self.columns_["time"] = self._time_column  # a validation fold-in is ordered like a history
        return super()._validation_data(valid)

    def _fit(self, X, valid) -> None:
        self.columns_["time"] = self._time_column
        user, item = self.columns_["user"], self.columns_["item"]
        u = X.users.index_of(self._ordered_train[user].to_numpy())
        i = X.items.index_of(self._ordered_train[item].to_numpy())
        kept = np.asarray(X.matrix[u, i]).ravel() > 0  # rows a threshold dropped are not in the sequence
        self.sequences_ = _pad_sequences(u[kept], i[kept], X.shape[0], self.max_length)
        super()._fit(X, valid)

    @property
    def _causal(self) -> bool:
        """The network reads left to right and the user code sits on the most recent item (no mask token)."""
        return self.objective == "next"

    def _batches(self, sequences: np.ndarray):
        """Endless shuffled batches ``((tokens, positions), targets, weights)`` of the training sequences, for the objective."""
        return self._next_item_batches(sequences) if self._causal else self._cloze_batches(sequences)

    def _epoch_batches(self, sequences: np.ndarray, rng: np.random.Generator):
        """One epoch's batches, each cut to the columns of its longest sequence: ``sequences[rows][:, -width:]``.

        Users are grouped with others of about the same length (sorted by length times a random
        factor of 0.8-1.25, so that the groups change from epoch to epoch) and the batches come in a
        random order. Positions count from the right end and padding is never attended to, so the cut
        changes no hidden state: it saves the padding's work (about half of every step on
        MovieLens-100K at ``max_length=200``, more on shorter histories)."""
        n, length = sequences.shape
        lengths = np.count_nonzero(sequences, axis=1)
        order = np.argsort(lengths * rng.uniform(0.8, 1.25, n), kind="stable")
        batches = [order[start:start + self.batch_size] for start in range(0, n, self.batch_size)]
        for b in rng.permutation(len(batches)):
            rows = batches[b]
            width = max(1, int(lengths[rows].max()))
            yield sequences[rows][:, length - width:]

    def _next_item_batches(self, sequences: np.ndarray):
        """Next-item batches: the tokens are the sequence shifted right by one place, so that the causal network's
        state at every place (having read the items up to it) is asked the item that follows.

        Every target weighs the same, ``sequences / targets`` of the whole training set (the loss divides by
        a batch's sequences): a batch's loss is its mean over targets when its histories have the mean length,
        and batches of short histories, grouped by `_epoch_batches`, do not give their few targets more weight."""
        rng = np.random.default_rng(self.seed)
        lengths = np.count_nonzero(sequences, axis=1)
        per_target = np.float32(len(sequences) / max(1, int(np.maximum(lengths - 1, 0).sum())))
        while True:
            for following in self._epoch_batches(sequences, rng):
                tokens = np.zeros_like(following)
                tokens[:, 1:] = following[:, :-1]
                weights = (tokens > 0) & (following > 0)
                places = np.broadcast_to(np.arange(following.shape[1], dtype=np.int32), following.shape)
                yield ((tokens.astype(np.int32), places), np.maximum(following - 1, 0).astype(np.int32),
                       weights.astype(np.float32) * per_target)

    def _cloze_batches(self, sequences: np.ndarray):
        """Endless shuffled batches ``((tokens, positions), targets, weights)`` of the training sequences.

        A share ``last_item_share`` of the sequences is cut at a random place and only the last item
        of the prefix is masked (a next-item sample, from any point of the history); the others are
        masked at random (Cloze). Each sequence weighs 1 in the loss, shared among its masked places.
        """
        rng = np.random.default_rng(self.seed)
        mask_token = self.network_.mask_token
        while True:
            for tokens in self._epoch_batches(sequences, rng):
                tokens = tokens.copy()
                length = tokens.shape[1]
                most = max(1, int(np.ceil(1.5 * self.mask_probability * length)))  # masked places read per sequence
                masked = (rng.random(tokens.shape) < self.mask_probability) & (tokens > 0)
                last_only = rng.random(len(tokens)) < self.last_item_share
                for r in np.flatnonzero(last_only):
                    items = tokens[r][tokens[r] > 0]
                    items = items[:rng.integers(1, len(items) + 1)]  # a prefix of 1..all items
                    tokens[r] = 0
                    tokens[r, length - len(items):] = items
                masked[last_only] = False
                masked[:, -1] |= last_only | ~masked.any(axis=1)  # the last column is every sequence's last item
                # at most `most` masked places per sequence, chosen at random
                positions = np.argsort(-np.where(masked, rng.random(tokens.shape), -1.0), axis=1)[:, :most]
                chosen = np.take_along_axis(masked, positions, axis=1)
                targets = np.where(chosen, np.take_along_axis(tokens, positions, axis=1) - 1, 0)
                rows = np.broadcast_to(np.arange(len(tokens))[:, None], positions.shape)
                tokens[rows[chosen], positions[chosen]] = mask_token
                weights = chosen / chosen.sum(axis=1, keepdims=True)
                yield ((tokens.astype(np.int32), positions.astype(np.int32)), targets.astype(np.int32),
                       weights.astype(np.float32))

    def _dataset(self, sequences: np.ndarray):
        """:meth:`_batches` as a ``tf.data.Dataset`` whose batches may differ in length (one traced step for all)."""
        import tensorflow as tf

        places = tf.TensorSpec((None, None), tf.int32)
        signature = ((places, places), places, tf.TensorSpec((None, None), tf.float32))
        return tf.data.Dataset.from_generator(lambda: self._batches(sequences), output_signature=signature)

    #: its own batches and loop: aerec.distributed.fit does not train it
    _trains_across_workers = False

    def _train(self, X, valid) -> None:
        import keras

        from ..models.callbacks import EpochTimer, early_stopping

        keras.utils.set_random_seed(self.seed)
        self.network_ = self._build_network(*X.shape)
        self.network_.compile(optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate), jit_compile=False)
        timer = EpochTimer()
        callbacks = [timer]
        name = "val_" + self._validation_metric
        if valid is not None:
            checked = self._early_stopping_sample(valid)
            score = lambda: self.validation_metrics(checked, [self._validation_metric])[self._validation_metric]  # noqa: E731
            every = self._validation_every(checked.inputs.shape[0], X.shape[0])
            callbacks += early_stopping(score, patience=self.patience or self.epochs + 1, every=every,
                                        name=name, verbose=int(bool(self.verbose)))
        history = self.network_.fit(self._dataset(self.sequences_), epochs=self.epochs,
                                    steps_per_epoch=-(-X.shape[0] // self.batch_size), callbacks=callbacks,
                                    verbose=self.verbose, shuffle=False)
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        self.history_["train_seconds"] = timer.seconds
        if valid is not None:
            self.history_["valid_seconds"] = callbacks[-2].seconds  # early_stopping's RankingValidation
        self.best_epoch_ = int(np.argmax(self.history_[name])) if valid is not None else len(self.history_["loss"]) - 1
        self.history_["best_epoch"] = [self.best_epoch_]

    # --- codes ---------------------------------------------------------------------------
    def _ordered_items(self, rows: sp.csr_matrix, user_index) -> list[np.ndarray]:
        """Each row's items, oldest first: a training user's in their fit-time order, a history's by its row values."""
        out = []
        for r in range(rows.shape[0]):
            cols = rows.indices[rows.indptr[r]:rows.indptr[r + 1]]
            if user_index is not None and user_index[r] >= 0:
                stored = self.sequences_[user_index[r]]
                stored = stored[stored > 0] - 1
                # items older than the stored window come first (and are cut), items not in the row are left out
                out.append(np.concatenate([np.setdiff1d(cols, stored), stored[np.isin(stored, cols)]]))
            else:
                out.append(cols[np.argsort(rows.data[rows.indptr[r]:rows.indptr[r + 1]], kind="stable")])
        return out

    def _tokens(self, sequences) -> np.ndarray:
        """The network's input for item-index sequences (oldest first): the most recent items, left-padded,
        and (Cloze) a mask token appended."""
        window = self.max_length if self._causal else self.max_length - 1  # Cloze: a mask token appended
        tokens = np.zeros((len(sequences), self.max_length), np.int32)
        tokens[:, window:] = self.network_.mask_token
        for r, items in enumerate(sequences):
            items = np.asarray(items)[-window:]
            tokens[r, window - len(items):window] = items + 1
        return tokens

    def attention(self, history) -> pd.DataFrame:
        """What the user code attends to: the attention weights of the position where ``h_u`` is read over
        the items of one ordered history, per block and head.

        Parameters
        ----------
        history : list of item ids
            Oldest first (an item repeated counts once, at its last place; the most recent
            ``max_length`` items, or ``max_length - 1`` for Cloze, are read).

        Returns
        -------
        DataFrame
            One row per history item read, oldest first: ``position`` (0 = oldest read), ``item``,
            and one column per block and head, ``"block 1 head 1"``, ... Each column sums to 1 over the
            rows with the causal objective; with Cloze the rest is the appended mask attending to itself.
        """
        self._check_fitted()
        ids = list(dict.fromkeys(reversed(as_list(history))))[::-1]  # a repeat counts at its last place
        if not ids:
            raise DataValidationError("attention needs a history of at least one item")
        items = self.items_.index_of(ids)
        tokens = self._tokens([items])
        used = len(tokens[0]) - int(np.argmax(tokens[0] > 0))  # the padding is left out
        weights = _numpy(self.network_.last_position_attention(tokens[:, -used:]))[0]  # (blocks, heads, used)
        read = min(len(items), self.max_length if self._causal else self.max_length - 1)
        frame = pd.DataFrame({"position": np.arange(read), "item": ids[-read:]})
        for b in range(weights.shape[0]):
            for h in range(weights.shape[1]):
                frame[f"block {b + 1} head {h + 1}"] = weights[b, h, :read]
        return frame

    def _user_vectors(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        tokens = self._tokens(self._ordered_items(rows, user_index))
        # the network reads only as far back as the longest sequence of the batch
        codes = []
        for start in range(0, len(tokens), 256):
            batch = tokens[start:start + 256]
            used = max(1, int((batch > 0).sum(axis=1).max()))
            codes.append(_numpy(self.network_.user_code(batch[:, self.max_length - used:])))
        return np.vstack(codes).astype(np.float32) if codes else np.zeros((0, self.code_dim), np.float32)

    def _item_vectors(self):
        W, b = self.network_.item_vectors()
        return _numpy(W), _numpy(b)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"sequences": self.sequences_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.sequences_ = state["sequences"]

    # --- ordered histories ----------------------------------------------------------------
    def _history_matrix(self, history, user: str, item: str, what: str = "history") -> Interactions:
        """The history's rows with each item's place in its user's sequence as the value (see :meth:`_ordered_items`)."""
        check_columns(history, [user, item], what)
        if len(history) == 0:
            raise DataValidationError(f"{what} is empty: give at least one (user, item) row")
        time = self.columns_.get("time")
        ordered = history.iloc[_time_order(history, time if time in history.columns else None, what)]
        places = pd.DataFrame({user: ordered[user].to_numpy(), item: ordered[item].to_numpy(),
                               _PLACE: np.arange(1, len(ordered) + 1, dtype=np.float32)})
        return Interactions.from_frame(places, user=user, item=item, rating=_PLACE, items=self.items_,
                                       on_unknown="warn", duplicates="max", what=what)

    def top_k_for_histories(self, histories, k: int = 10, exclude_seen: bool = True, via: str = "model"):
        """As :meth:`Recommender.top_k_for_histories`, each history read as a sequence in the order given."""
        from .base import _check_via

        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_))
        indptr, cols, places, ignored = [0], [], [], []
        for history in histories:
            values = as_list(history)
            index = self.items_.index_of(values, on_unknown="mark") if values else np.zeros(0, np.int64)
            ignored.append([v for v, j in zip(values, index) if j < 0])
            last = {int(j): place for place, j in enumerate(index, start=1) if j >= 0}  # a repeat counts at its last place
            known = np.array(sorted(last), dtype=np.int64)
            cols.append(known)
            places.append(np.array([last[j] for j in known.tolist()], dtype=np.float32))
            indptr.append(indptr[-1] + len(known))
        cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        places = np.concatenate(places) if places else np.zeros(0, np.float32)
        rows = sp.csr_matrix((places, cols, np.asarray(indptr)), shape=(len(indptr) - 1, len(self.items_)))
        return self._top_k(rows, None, k, exclude_seen, via, ignored)


def _time_order(frame: pd.DataFrame, time: str | None, what: str) -> np.ndarray:
    """Row positions of ``frame`` in time order, ties (and ``time=None``) in row order."""
    if time is None:
        return np.arange(len(frame))
    column = frame[time]
    missing = column.isna().to_numpy()
    if missing.any():
        raise DataValidationError(f"{what}: column {time!r} has {int(missing.sum())} missing time(s), first at rows "
                                  f"{first_rows(frame.index, missing)}; every interaction needs a time to be ordered")
    try:
        return np.argsort(column.to_numpy(), kind="stable")
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in column.to_numpy()})
        raise DataValidationError(f"{what}: the values of column {time!r} cannot be sorted together (types {kinds}): "
                                  f"{exc}. Give numbers, datetimes or strings of one kind") from None


def _pad_sequences(users: np.ndarray, items: np.ndarray, n_users: int, length: int) -> np.ndarray:
    """Each user's items (given in time order) as a left-padded row of item index + 1, the most recent ``length``;
    an item repeated counts once, at its last place."""
    order = np.arange(len(users))
    last = pd.Series(order).groupby([users, items]).transform("max").to_numpy() == order
    users, items = users[last], items[last]
    by_user = np.argsort(users, kind="stable")
    users, items = users[by_user], items[by_user]
    ends = np.cumsum(np.bincount(users, minlength=n_users))
    from_end = ends[users] - 1 - np.arange(len(users))  # 0 for each user's most recent item
    keep = from_end < length
    sequences = np.zeros((n_users, length), np.int32)
    sequences[users[keep], length - 1 - from_end[keep]] = items[keep] + 1
    return sequences
