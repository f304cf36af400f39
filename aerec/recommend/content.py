"""`ContentModel`: item features -> item codes in a fitted recommender's item space (cold-start items).

Every aerec recommender scores ``h_u · W_i + b_i``. An item nobody has interacted with has no
``[W_i, b_i]``; the content model learns a map ``f(x_i) -> [W_i, b_i]`` from the features of the
items the recommender was trained on, so a new item gets a code that the same user codes, the
same scoring and the same FAISS index use. It works through the recommender contract only
(``_user_vectors``, ``_item_vectors`` and the training matrix), so it serves every model.

Two ways of learning ``f`` (``loss=``):

- ``"ridge"`` (the default): ridge regression of the recommender's item codes ``[W_i, b_i]`` on
  the items' fixed features (TF-IDF, multi-hots, standardised and binned numbers), in closed
  form. The codes already hold what the model learned of each item (its bias is roughly its
  popularity, its ``W_i`` who likes it), and the regression carries that over to new items.
- ``"softmax"``: a network (``hidden_dim`` ReLU layers) trained so that the score ``h_u · f(x_i)``
  itself ranks the items each user has: the user codes ``h_u`` are held fixed and the
  multinomial likelihood over the training items is maximised (as Mult-DAE is trained, with
  ``f(x_i)`` in place of the output layer). So that ``h_u`` does not already contain the items
  it must find, each user's items are split into ``folds`` parts and each part is predicted
  from a code of the others (a user meets a new item that way: it is not in the history the
  code is made from). A share of the training items (``validation_fraction``) is held out as if
  cold, for early stopping on their Recall@20.

Either way the content scores are then put on the recommender's scale (:meth:`ContentModel._calibrate`),
so that new items mix sensibly with the model's own in a full list.

On protocol E's validation items (MovieLens-100K, ``benchmarks/protocol_e.py --split valid
--designs``) the ridge regression beat the softmax head on top of both EASE and Mult-DAE, by
mean and by spread over the seeds; that is why it is the default (20 quantile bins of the
release date and ``l2=10`` were chosen there too).
"""
from __future__ import annotations

import numbers
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import BaseEstimator, clone, register
from ..bundle import load_part, save_part
from ..data.interactions import check_columns
from ..exceptions import DataValidationError, DroppedRowsWarning, InvalidParameterError
from ..metrics import metrics_from_hits
from ..params import Interval, Options, Widths
from ..utils import shown
from ..features import FeatureColumns, feature_arrays, infer_feature_columns

__all__ = ["ContentModel"]

LOSSES = ("ridge", "softmax")
_NETWORK_FILE = "content.keras"
#: validation metric of early stopping: Recall@K of held-out items ranked among themselves
_VALID_K = 20


@register
class ContentModel(BaseEstimator):
    """Maps items' features to item codes ``[W_i, b_i]`` of a fitted recommender, for cold-start items.

    Give it to a recommender's ``fit``: ``model.fit(train, item_features=features_df,
    content=ContentModel(...))``; the recommender then codes new items with
    :meth:`~aerec.recommend.base.Recommender.add_items`. The preprocessing of the features
    (vocabularies, IDF weights, means) lives in the saved Keras network.

    Parameters
    ----------
    loss : {"ridge", "softmax"}, default "ridge"
        How the map is learned (see the module docstring).
    hidden_dim : int or tuple of int, optional
        Hidden ReLU layers between the features and the code; 0 for a linear map. By default 0
        for ``"ridge"`` (which needs it) and 256 for ``"softmax"``.
    text_mode : {"tfidf", "embedding"}, default "tfidf"
        Text columns as L2-normalised TF-IDF vectors, or as the mean of learned token embeddings.
    text, categorical, multilabel, numeric, vector : list of str, optional
        Column roles given by name; the other columns' roles are inferred
        (:func:`aerec.features.infer_feature_columns`).
    image : list of str, optional
        Columns holding image file paths (an item's photo; empty for items without one), relative
        to ``image_root``. Each is read as a ``vector`` column of the photos' codes from
        ``image_search``; an item whose photo is missing or unreadable is coded without it (a
        warning counts them).
    image_search : aerec.ImageSearch, optional
        What codes the photos: a fitted one is used as it is; an unfitted one (default
        ``ImageSearch(seed=seed)``) is fitted on the photos of the feature table's items. It is
        saved with the content model.
    image_root : str or Path, optional
        The folder relative image paths start from (default: the working directory).
    separator : str, default "|"
        What joins the labels of a multi-label string cell.
    max_tokens : int, default 20000
        Largest text vocabulary (the most frequent tokens).
    min_df : int, default 2
        Tokens found in fewer items are left out (a token of one item cannot carry over to another).
    numeric_bins : int, default 20
        Quantile bins per numeric column, one-hot beside its standardised value; 0 for none.
    embedding_dim, sequence_length : int, default 32, 16
        ``text_mode="embedding"``: token embedding width and tokens read per cell.
    dropout : float, default 0.0
        Dropout on the features in training.
    l2 : float, optional
        The L2 penalty: of the regression for ``"ridge"`` (default 10.0), on the network's kernels
        for ``"softmax"`` (default 0.0).
    folds : int, default 5
        ``"softmax"``: parts each user's items are split into (one predicted from the others).
    validation_fraction : float, default 0.1
        ``"softmax"``: share of the training items held out as cold items for early stopping; 0
        trains all ``epochs``.
    epochs : int, default 30
        Most passes over the training examples.
    patience : int, default 5
        Stop after this many epochs without a better validation Recall@20 (the best epoch's
        weights are kept).
    batch_size : int, default 256
    learning_rate : float, default 1e-3
        Adam's step size.
    seed : int, default 0
        Seeds the folds, the held-out items, the weights and the shuffling.
    verbose : int, default 0

    Attributes
    ----------
    columns_ : aerec.features.FeatureColumns
        The feature columns by role.
    network_ : aerec.models.content.ContentNetwork
    history_ : dict
        Per epoch ``loss`` and ``val_recall@20`` (when items are held out), ``best_epoch``.
    n_training_items_ : int
        Items whose features and codes the map was learned from.
    image_search_ : aerec.ImageSearch or None
        What codes the ``image`` columns' photos.

    Examples
    --------
    >>> import aerec
    >>> ml = aerec.datasets.movielens_100k()
    >>> features = ml.items[["item", "title", "genres"]]
    >>> warm = ml.ratings[ml.ratings["item"] <= 1600]
    >>> model = aerec.EASE(l2=300.0).fit(warm, rating="rating", threshold=4, item_features=features,
    ...                                  content=aerec.ContentModel(l2=10.0))
    >>> recs = model.recommend([1], k=5, items=list(range(1601, 1683)))  # rank only the items it never saw
    >>> bool(recs["item"].between(1601, 1682).all()), len(model.similar_items([1682], k=3))
    (True, 3)
    """

    _parameter_constraints = {
        "loss": [Options(*LOSSES)],
        "hidden_dim": [Widths(0), None],
        "text_mode": [Options("tfidf", "embedding")],
        "max_tokens": [Interval("int", 1, None)],
        "min_df": [Interval("int", 1, None)],
        "numeric_bins": [Interval("int", 0, None)],
        "embedding_dim": [Interval("int", 1, None)],
        "sequence_length": [Interval("int", 1, None)],
        "dropout": [Interval("real", 0, 1, closed="left")],
        "l2": [Interval("real", 0, None), None],
        "folds": [Interval("int", 2, None)],
        "validation_fraction": [Interval("real", 0, 0.5, closed="left")],
        "epochs": [Interval("int", 1, None)],
        "patience": [Interval("int", 1, None)],
        "batch_size": [Interval("int", 1, None)],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "seed": [Interval("int", 0, None)],
        "verbose": [Options(0, 1, 2, False, True)],
    }

    def __init__(self, loss: str = "ridge", hidden_dim=None, text_mode: str = "tfidf", text=None, categorical=None,
                 multilabel=None, numeric=None, vector=None, image=None, image_search=None, image_root=None,
                 separator: str = "|", max_tokens: int = 20000,
                 min_df: int = 2, numeric_bins: int = 20, embedding_dim: int = 32, sequence_length: int = 16,
                 dropout: float = 0.0, l2: float | None = None, folds: int = 5,
                 validation_fraction: float = 0.1, epochs: int = 30, patience: int = 5, batch_size: int = 256,
                 learning_rate: float = 1e-3, seed: int = 0, verbose: int = 0):
        self.loss = loss
        self.hidden_dim = hidden_dim
        self.text_mode = text_mode
        self.text = text
        self.categorical = categorical
        self.multilabel = multilabel
        self.numeric = numeric
        self.vector = vector
        self.image = image
        self.image_search = image_search
        self.image_root = image_root
        self.separator = separator
        self.max_tokens = max_tokens
        self.min_df = min_df
        self.numeric_bins = numeric_bins
        self.embedding_dim = embedding_dim
        self.sequence_length = sequence_length
        self.dropout = dropout
        self.l2 = l2
        self.folds = folds
        self.validation_fraction = validation_fraction
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.verbose = verbose

    # --- hyperparameters -----------------------------------------------------------------
    def _hidden(self) -> tuple[int, ...]:
        if self.hidden_dim is None:
            return () if self.loss == "ridge" else (256,)
        hidden = (self.hidden_dim,) if isinstance(self.hidden_dim, numbers.Integral) else tuple(self.hidden_dim)
        return tuple(int(h) for h in hidden if int(h) > 0)

    def _l2(self) -> float:
        if self.l2 is None:
            return 10.0 if self.loss == "ridge" else 0.0
        return float(self.l2)

    def _check_param_relations(self) -> None:
        if self.loss == "ridge" and (self._hidden() or self.text_mode != "tfidf"):
            raise InvalidParameterError("loss='ridge' is a closed-form linear regression: it needs hidden_dim=0 and "
                                        "text_mode='tfidf'")

    # --- fitting -------------------------------------------------------------------------
    def fit(self, item_features: pd.DataFrame, recommender) -> "ContentModel":
        """Learn the map from the features of the items ``recommender`` (fitted) was trained on.

        ``item_features`` is keyed by the recommender's item column; rows of other items only
        shape the preprocessing (vocabulary, IDF, means). Training items without a feature row
        are left out with a warning that counts them.
        """
        import random

        from ..models.content import ContentNetwork, feature_statistics

        self._validate_params()
        recommender._check_fitted()
        start = time.perf_counter()
        item = recommender.columns_["item"]
        images = self._image_columns()
        self.image_search_ = self._fitted_image_search(item_features, images)
        item_features = self._with_image_codes(item_features, "item_features")
        vector = None if self.vector is None and not images else [*_names(self.vector), *images]
        self.columns_ = infer_feature_columns(item_features, item=item, text=self.text, categorical=self.categorical,
                                              multilabel=self.multilabel, numeric=self.numeric, vector=vector,
                                              separator=self.separator)
        ids, arrays = feature_arrays(item_features, self.columns_)
        columns = self.columns_.to_json()
        stats = feature_statistics(arrays, columns, max_tokens=int(self.max_tokens), min_df=int(self.min_df),
                                   numeric_bins=int(self.numeric_bins))
        empty = [k.partition(":")[2] for k, v in stats.items() if "vocabulary" in v and not v["vocabulary"]
                 and not k.startswith("text:")]
        if empty:
            raise DataValidationError(f"item_features: column(s) {empty} have no values to learn from")

        n_model = recommender.n_model_items_
        index = recommender.items_.index_of(ids, on_unknown="mark")
        rows = np.flatnonzero((index >= 0) & (index < n_model))
        if not len(rows):
            raise DataValidationError(
                f"item_features has no row for any of the {n_model} training items (column {item!r}: e.g. "
                f"{list(ids[:3])}, training ids e.g. {list(recommender.items_.ids[:3])}); the content model learns "
                f"from the features of items with interactions")
        if len(rows) < n_model:
            warnings.warn(f"item_features: {n_model - len(rows)} of {n_model} training item(s) have no feature row "
                          f"and are left out of the content model's training", DroppedRowsWarning, stacklevel=3)
        order = np.argsort(index[rows], kind="stable")
        rows, items = rows[order], index[rows[order]]
        W, b = recommender._item_vectors()
        targets = np.hstack([np.asarray(W, np.float32)[items], np.asarray(b, np.float32)[items, None]])

        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            import keras

            keras.utils.set_random_seed(int(self.seed))
            self.network_ = ContentNetwork(columns, stats, code_dim=targets.shape[1] - 1, hidden=self._hidden(),
                                           text_mode=self.text_mode, embedding_dim=int(self.embedding_dim),
                                           sequence_length=int(self.sequence_length), dropout=float(self.dropout),
                                           weight_decay=self._l2(), seed=int(self.seed))
            self.network_.build()
            dense, tokens = self._preprocess({k: v[rows] for k, v in arrays.items()})
            self.history_ = {}
            if self.loss == "ridge":
                from ..models.content import ridge_output

                ridge_output(self.network_, dense, targets, self._l2())
                held = np.zeros(len(items), dtype=bool)
            else:
                held = self._train(recommender, items, dense, tokens)
            self._calibrate(recommender, items, dense, tokens, held)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
        self.n_training_items_ = len(items)
        self.fit_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

    def _preprocess(self, arrays: dict) -> tuple[np.ndarray, dict]:
        dense, tokens = self.network_.preprocess(arrays)
        return np.asarray(dense, np.float32), {k: np.asarray(v, np.int32) for k, v in tokens.items()}

    def _train(self, recommender, items: np.ndarray, dense: np.ndarray, tokens: dict) -> np.ndarray:
        """Keras training of the softmax head, early stopping on held-out items; returns which of
        ``items`` were held out."""
        import keras

        from ..models.callbacks import EpochTimer, early_stopping
        from ..models.content import SoftmaxTrainer, masked_multinomial_nll

        rng = np.random.default_rng(int(self.seed))
        n_valid = int(round(float(self.validation_fraction) * len(items)))
        held = np.zeros(len(items), dtype=bool)
        if n_valid >= 2:
            held[rng.choice(len(items), size=n_valid, replace=False)] = True
        X = sp.csr_matrix(recommender.interactions_.matrix[:, :recommender.n_model_items_], dtype=np.float32)
        user_vectors = _batched(recommender)

        callbacks = [EpochTimer()]
        if held.any():
            score = _HeldOutRecall(self.network_, X, items[held], dense[held], {k: v[held] for k, v in tokens.items()},
                                   user_vectors)
            callbacks += early_stopping(score, patience=int(self.patience), name=f"val_recall@{_VALID_K}",
                                        verbose=int(bool(self.verbose)))
        H, Y = _fold_examples(X, items[~held], int(self.folds), rng, user_vectors)
        model = SoftmaxTrainer(self.network_, dense[~held], {k: v[~held] for k, v in tokens.items()})
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(self.learning_rate)),
                      loss=masked_multinomial_nll, jit_compile=False)
        dataset, steps = _example_batches(H, Y, int(self.batch_size), int(self.seed))
        history = model.fit(dataset, epochs=int(self.epochs), steps_per_epoch=steps, callbacks=callbacks,
                            verbose=self.verbose, shuffle=False)
        self.history_ = {name: [float(v) for v in values] for name, values in history.history.items()}
        key = f"val_recall@{_VALID_K}"
        self.history_["best_epoch"] = [int(np.argmax(self.history_[key])) if key in self.history_
                                       else len(self.history_["loss"]) - 1]
        self.history_["train_seconds"] = callbacks[0].seconds
        return held

    def _calibrate(self, recommender, items: np.ndarray, dense: np.ndarray, tokens: dict, held: np.ndarray) -> None:
        """Put the content scores on the recommender's scale, so new items mix sensibly with its own.

        The ranking of new items among themselves does not depend on it, but a list mixing them
        with the model's items does: a softmax head's logits, say, have a scale of their own. The
        codes are mapped to ``[a W, a b + c]``, i.e. every content score ``s`` becomes ``a s + c``,
        with ``a`` the least-squares slope of the model's scores of the (held-out, else all)
        training items on their content scores within each user, and ``c`` the mean offset.
        A weak content model thus gets a small slope: its items enter a user's list only when
        they are predicted well above that user's average.
        """
        use = held if held.any() else np.ones(len(items), dtype=bool)
        codes = np.asarray(self.network_.encode(dense[use], {k: v[use] for k, v in tokens.items()}), np.float64)
        W, b = recommender._item_vectors()
        W, b = np.asarray(W, np.float64)[items[use]], np.asarray(b, np.float64)[items[use]]
        rng = np.random.default_rng(int(self.seed))
        n_users = len(recommender.users_)
        users = np.sort(rng.choice(n_users, size=min(n_users, 2000), replace=False))
        X = recommender.interactions_.matrix[users][:, :recommender.n_model_items_]
        H = _batched(recommender)(X, users).astype(np.float64)
        content, model = H @ codes[:, :-1].T + codes[:, -1], H @ W.T + b
        c0, m0 = content - content.mean(1, keepdims=True), model - model.mean(1, keepdims=True)
        slope = float((c0 * m0).sum() / max((c0 ** 2).sum(), 1e-12))
        slope = max(slope, 1e-6)  # a content model no better than chance still ranks; it just never wins
        offset = float((model.mean(1) - slope * content.mean(1)).mean())
        layer = self.network_.output_layer
        kernel, bias = np.asarray(layer.kernel, np.float64) * slope, np.asarray(layer.bias, np.float64) * slope
        bias[-1] += offset
        layer.kernel.assign(kernel.astype(np.float32))
        layer.bias.assign(bias.astype(np.float32))
        self.calibration_ = {"slope": slope, "offset": offset}

    # --- coding items ----------------------------------------------------------------------
    def _codes_of(self, item_features: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, codes)``: the ids of ``item_features`` and their codes ``[W_i, b_i]`` (n, code_dim + 1)."""
        self._check_fitted()
        ids, arrays = feature_arrays(self._with_image_codes(item_features, what), self.columns_, what)
        codes = [np.asarray(self.network_({k: v[s:s + 4096] for k, v in arrays.items()}), np.float32)
                 for s in range(0, len(ids), 4096)]
        width = self.network_.code_dim + 1
        return ids, np.vstack(codes) if codes else np.zeros((0, width), np.float32)

    def transform(self, item_features: pd.DataFrame) -> pd.DataFrame:
        """The item codes ``c0..c{d-1}`` and ``bias`` of the items in ``item_features``, indexed by item id."""
        ids, codes = self._codes_of(item_features, "item_features")
        frame = pd.DataFrame(codes[:, :-1], index=pd.Index(ids, name=self.columns_.item),
                             columns=[f"c{j}" for j in range(codes.shape[1] - 1)])
        frame["bias"] = codes[:, -1]
        return frame

    # --- item photos ----------------------------------------------------------------------
    def _image_columns(self) -> list:
        return _names(self.image)

    def _image_paths(self, series: pd.Series) -> tuple[np.ndarray, list]:
        """Rows of ``series`` that name a photo, and those photos' paths (``image_root`` applied)."""
        present = series.notna().to_numpy() & (series.astype(str).str.strip() != "").to_numpy()
        root = Path(self.image_root) if self.image_root is not None else None
        paths = [str(root / str(p)) if root is not None else str(p) for p in series[present]]
        return np.flatnonzero(present), paths

    def _fitted_image_search(self, item_features: pd.DataFrame, images: list):
        if not images:
            return None
        from ..images import ImageSearch

        check_columns(item_features, images, "item_features")
        search = self.image_search if self.image_search is not None else ImageSearch(seed=int(self.seed))
        if not isinstance(search, ImageSearch):
            raise TypeError(f"image_search must be an aerec.ImageSearch, got {type(search).__name__}")
        if getattr(search, "fitted_", False):
            return search
        paths = sorted({p for column in images for p in self._image_paths(item_features[column])[1]})
        if not paths:
            raise DataValidationError(f"item_features: image column(s) {images} name no photo to learn from")
        return clone(search).fit(paths, on_error="skip")

    def _with_image_codes(self, item_features: pd.DataFrame, what: str) -> pd.DataFrame:
        """``item_features`` with each image column's paths replaced by the photos' codes (None where
        an item has no readable photo, counted in a warning)."""
        images = self._image_columns()
        if not images:
            return item_features
        check_columns(item_features, images, what)
        table = item_features.copy()
        for column in images:
            rows, paths = self._image_paths(item_features[column])
            cells = [None] * len(table)
            if paths:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DroppedRowsWarning)  # counted per item below
                    codes = self.image_search_.codes(list(dict.fromkeys(paths)), ids=None)
                by_path = dict(zip(codes.index, codes.to_numpy(np.float32)))
                for r, path in zip(rows, paths):
                    cells[r] = by_path.get(path)
                unread = [(table.index[r], path) for r, path in zip(rows, paths) if path not in by_path]
                if unread:
                    warnings.warn(f"{what}: {len(unread)} photo(s) of column {column!r} could not be read, so those "
                                  f"items are coded without a photo: {shown([f'{i!r} ({p})' for i, p in unread])}",
                                  DroppedRowsWarning, stacklevel=4)
            table[column] = pd.Series(cells, index=table.index, dtype=object)
        return table

    # --- saving ----------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        self.network_.save(Path(directory) / _NETWORK_FILE, include_optimizer=False)
        images = None if self.image_search_ is None else save_part(self.image_search_, Path(directory), "images")
        return {"columns": self.columns_.to_json(), "history": self.history_, "calibration": self.calibration_,
                "n_training_items": int(self.n_training_items_), "fit_seconds": float(self.fit_seconds_),
                "images": images}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "ContentModel":
        import keras

        from ..models import content  # noqa: F401  (registers ContentNetwork for deserialisation)

        model = cls(**meta["params"])
        model.columns_ = FeatureColumns.from_json(meta["columns"])
        model.network_ = keras.saving.load_model(Path(directory) / _NETWORK_FILE, compile=False, safe_mode=True)
        model.history_ = meta.get("history", {})
        model.calibration_ = meta.get("calibration")
        model.n_training_items_ = meta.get("n_training_items")
        model.fit_seconds_ = meta.get("fit_seconds")
        model.image_search_ = None if meta.get("images") is None else load_part(Path(directory), meta["images"])
        model.fitted_ = True
        return model


def _names(value) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)




def _batched(recommender, batch: int = 1024):
    """``user_vectors(rows)``: the recommender's user codes of training users' (modified) rows, in batches."""
    def user_vectors(rows: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        out = [np.asarray(recommender._user_vectors(rows[s:s + batch], users[s:s + batch]), np.float32)
               for s in range(0, rows.shape[0], batch)]
        return np.vstack(out)
    return user_vectors


def _fold_examples(X: sp.csr_matrix, train_items: np.ndarray, folds: int, rng, user_vectors):
    """Training examples of the softmax head: for each fold k and user, the user code of their items
    outside fold k and, over ``train_items``, +1 for their items in fold k and -1 for the others they
    have (left out of the softmax: they are the input)."""
    coo = X.tocoo()
    fold = rng.integers(0, folds, size=coo.nnz)
    column = np.full(X.shape[1], -1, dtype=np.int64)
    column[train_items] = np.arange(len(train_items))
    users = np.arange(X.shape[0])
    H, Y = [], []
    for k in range(folds):
        out = fold == k
        inputs = sp.csr_matrix((coo.data[~out], (coo.row[~out], coo.col[~out])), shape=X.shape)
        col = column[coo.col]
        target = out & (col >= 0)
        keep = np.unique(coo.row[target])
        if not len(keep):
            continue
        seen = ~out & (col >= 0)
        rows = np.concatenate([coo.row[target], coo.row[seen]])
        values = np.concatenate([np.ones(int(target.sum()), np.float32), -np.ones(int(seen.sum()), np.float32)])
        Yk = sp.csr_matrix((values, (rows, np.concatenate([col[target], col[seen]]))),
                           shape=(X.shape[0], len(train_items)))
        H.append(user_vectors(inputs[keep], users[keep]))
        Y.append(Yk[keep])
    if not H:
        raise DataValidationError("no user has an interaction with a training item that has features")
    return np.vstack(H).astype(np.float32), sp.vstack(Y).tocsr()


def _example_batches(H: np.ndarray, Y: sp.csr_matrix, batch_size: int, seed: int):
    """Endless shuffled batches ``(h, y)`` with ``y`` made dense a batch at a time."""
    import tensorflow as tf

    from ..models.batches import dense_row_gather

    n = Y.shape[0]
    gather = dense_row_gather(Y)
    codes = tf.constant(H, tf.float32)

    def batch(index):
        return tf.gather(codes, index), gather(index)

    dataset = (tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size).map(batch).repeat().prefetch(2))
    return dataset, -(-n // batch_size)


class _HeldOutRecall:
    """Recall@20 of the held-out training items ranked among themselves, each user's code made
    without them (they play cold items): the early-stopping score of the content network."""

    def __init__(self, network, X: sp.csr_matrix, items: np.ndarray, dense: np.ndarray, tokens: dict, user_vectors):
        self.network, self.dense, self.tokens = network, dense, tokens
        truth = X[:, items] > 0
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
        drop = np.zeros(X.shape[1], dtype=bool)
        drop[items] = True
        inputs = X[users] @ sp.diags((~drop).astype(np.float32))
        inputs.eliminate_zeros()
        self.truth = truth[users]
        self.h = user_vectors(sp.csr_matrix(inputs), users)

    def __call__(self) -> float:
        codes = np.asarray(self.network.encode(self.dense, self.tokens), np.float32)
        scores = self.h @ codes[:, :-1].T + codes[:, -1]
        k = min(_VALID_K, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        hits = np.asarray(self.truth[np.arange(len(top))[:, None], top].todense()) > 0
        if k < _VALID_K:
            hits = np.hstack([hits, np.zeros((len(hits), _VALID_K - k), bool)])
        return float(metrics_from_hits(hits, np.diff(self.truth.indptr), [f"recall@{_VALID_K}"]).mean().iloc[0])
