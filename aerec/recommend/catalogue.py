"""The cold-start catalogue of a recommender: items added from their features after training.

Given ``item_features``, :meth:`Recommender.fit <aerec.Recommender.fit>` also trains a content
model (:class:`~aerec.recommend.content.ContentModel`) that maps an item's features to an item code
``[W_i, b_i]`` in the model's space. :meth:`ItemCatalogue.add_items` appends new items with such
codes to the item map, to the item vectors scored after the model's own and to the FAISS index; the
collaborative model itself is never retrained, and only ever sees the columns of the items it was
trained on (the first ``n_model_items_``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import clone
from ..data import Interactions
from ..exceptions import DataValidationError, NotFittedError
from ..utils import shown

__all__ = ["ItemCatalogue"]


class ItemCatalogue:
    """Mixed into :class:`~aerec.Recommender`: the items added from features (``added_codes_``,
    ``added_biases_``, after the model's own in ``items_``) and how they are scored."""

    def _fit_content(self, item_features, content) -> None:
        from .content import ContentModel

        template = content if content is not None else ContentModel()
        if not isinstance(template, ContentModel):
            raise TypeError(f"content must be a ContentModel, got {type(template).__name__}")
        self.content_ = clone(template).fit(item_features, self)
        ids, codes = self.content_._codes_of(item_features, "item_features")
        new = ~pd.Index(ids).isin(self.items_.ids)
        if new.any():
            _check_id_kind(self.items_.ids, ids[new])
            self._append_items(ids[new], codes[new])

    def add_items(self, item_features) -> "ItemCatalogue":
        """Give new items codes from their features and make them recommendable, without retraining.

        The content model fitted with ``fit(..., item_features=...)`` maps each row to an item
        code ``[W_i, b_i]``; the items are appended to ``items_``, to the item vectors that
        :meth:`~aerec.recommend.base.Recommender.recommend` scores and to the FAISS index, so that they
        appear in :meth:`~aerec.recommend.base.Recommender.recommend` (also ``items=`` candidate sets),
        :meth:`~aerec.recommend.base.Recommender.recommend_for_history` and
        :meth:`~aerec.recommend.base.Recommender.similar_items` (both as answers and as queries).

        Parameters
        ----------
        item_features : DataFrame
            One row per new item, with the id column and the feature columns the content model
            was fitted with.

        Returns
        -------
        self

        Raises
        ------
        DataValidationError
            An id already in the catalogue, an id given twice, or a bad feature value (naming them).
        MissingColumnError
            A feature column the content model reads is absent (naming it).
        """
        self._check_fitted()
        if getattr(self, "content_", None) is None:
            raise NotFittedError(f"this {type(self).__name__} was fitted without item_features, so it cannot code "
                                 f"items from features: fit(..., item_features=...) first")
        ids, codes = self.content_._codes_of(item_features, "add_items")
        known = pd.Index(ids).isin(self.items_.ids)
        if known.any():
            raise DataValidationError(
                f"add_items: {int(known.sum())} item id(s) already in the catalogue: "
                f"[{shown(pd.Index(ids)[known])}]; add_items adds new items only")
        if len(ids):
            _check_id_kind(self.items_.ids, ids)
            vectors = np.asarray(codes, dtype=np.float32)
            if self._index is not None:  # else the index, built on first use, will hold them
                self._index.add(vectors, ids=pd.Index(ids))  # checks before it changes anything
            self._append_items(ids, vectors)
        return self

    def _append_items(self, ids, codes: np.ndarray) -> None:
        """Append items with codes ``[W_i, b_i]`` (rows of ``codes``) after the model's items (not to the index)."""
        X = self.interactions_
        items = X.items.extend(list(ids))
        matrix = sp.hstack([X.matrix, sp.csr_matrix((X.n_users, len(ids)), dtype=X.matrix.dtype)], format="csr")
        codes = np.asarray(codes, dtype=np.float32)
        W, b = codes[:, :-1], codes[:, -1]
        if self.added_codes_ is not None:
            W, b = np.vstack([self.added_codes_, W]), np.concatenate([self.added_biases_, b])
        self.interactions_ = Interactions(matrix, X.users, items)
        self.item_popularity_ = np.concatenate([self.item_popularity_, np.zeros(len(ids), np.float32)])
        self.added_codes_, self.added_biases_ = W, b
        
    @property
    def n_model_items_(self) -> int:
        """Items the collaborative model was trained on: the first columns of every row it reads."""
        added = getattr(self, "added_biases_", None)
        return len(self.items_) - (0 if added is None else len(added))

    def _all_item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of every item: the model's own, then the added ones."""
        W, b = self._item_vectors()
        if getattr(self, "added_codes_", None) is None:
            return W, b
        return (np.vstack([np.asarray(W, np.float32), self.added_codes_]),
                np.concatenate([np.asarray(b, np.float32), self.added_biases_]))

    def _all_scores(self, model_rows, user_index) -> np.ndarray:
        """Scores of every item (the model's own, then the added ones) for rows of the model's items."""
        if getattr(self, "added_codes_", None) is None:
            return self._scores(model_rows, user_index)
        h = np.asarray(self._user_vectors(model_rows, user_index), dtype=np.float32)
        from .base import Recommender

        if type(self)._scores is Recommender._scores:  # no faster path: one product over all items
            W, b = self._all_item_vectors()
            return h @ W.T + b
        return np.hstack([np.asarray(self._scores(model_rows, user_index), dtype=np.float32),
                          h @ self.added_codes_.T + self.added_biases_])

    def _split_rows(self, rows) -> tuple:
        """``(model_rows, known, cold)``: the columns of the model's items, rows with at least one of
        them, and rows with none of them but with added items."""
        n_model = self.n_model_items_
        model_rows = rows[:, :n_model] if rows.shape[1] > n_model else rows
        known = np.diff(model_rows.indptr) > 0
        if rows.shape[1] > n_model:
            cold = (np.diff(rows[:, n_model:].indptr) > 0) & ~known
        else:
            cold = np.zeros(rows.shape[0], dtype=bool)
        return model_rows, known, cold

    def _cold_queries(self, rows) -> np.ndarray:
        """Index queries ``[q, 0]`` for rows whose only items are added ones: ``q`` is the mean of their
        codes ``W_i``, so an added item's similar items are the items with the largest ``W_i · W_j``."""
        added = sp.csr_matrix(rows[:, self.n_model_items_:] > 0, dtype=np.float32)
        counts = np.maximum(np.asarray(added.sum(axis=1)).ravel(), 1.0)
        q = np.asarray((sp.diags(1.0 / counts) @ added) @ self.added_codes_, dtype=np.float32)
        return np.hstack([q, np.zeros((len(q), 1), np.float32)])


def _check_id_kind(known: pd.Index, new) -> None:
    """New item ids must be of the catalogue's kind: ``"12"`` added beside ``12`` would be another item."""
    new = pd.Index(list(new))
    kinds = {"known": pd.api.types.infer_dtype(known, skipna=True), "new": pd.api.types.infer_dtype(new, skipna=True)}
    numeric = ("integer", "floating", "mixed-integer-float", "decimal")
    same = kinds["known"] == kinds["new"] or (kinds["known"] in numeric and kinds["new"] in numeric)
    if not same and len(known) and len(new):
        raise DataValidationError(
            f"new item ids are {kinds['new']} (e.g. {new[0]!r}) but the model's item ids are {kinds['known']} "
            f"(e.g. {known[0]!r}); give the feature table's id column the type of the training ids")
