"""Bad input gets a clear error from aerec.exceptions (naming the column, row or id), or a warning that counts."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import AerecError, DataValidationError, InvalidParameterError, UnknownIdsWarning


def test_ids_mixing_numbers_and_strings_are_refused_at_fit():
    frame = pd.DataFrame({"user": [196, "196", 3.0, 7], "item": ["a", "b", "a", "c"]})
    with pytest.raises(DataValidationError, match=r"column 'user' mixes id types \(196 \(int\), '196' \(str\)"):
        aerec.Popularity().fit(frame)
    frame = pd.DataFrame({"user": [1, 2, 3], "item": [5, "5", 6]})
    with pytest.raises(DataValidationError, match=r"column 'item' mixes id types .*astype\(str\)"):
        aerec.EASE().fit(frame)


def test_popular_answers_for_only_unknown_users_keep_the_id_and_rank_types(small_positives):
    model = aerec.Popularity().fit(small_positives)
    recs = model.recommend([-1, -2], k=3, on_unknown="popular")
    assert recs["item"].dtype == small_positives["item"].dtype and recs["rank"].dtype == np.int64
    assert recs["user"].tolist() == [-1] * 3 + [-2] * 3


def test_negative_ratings_are_refused_by_recommenders_naming_rows():
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "stars": [5.0, -1.0, 4.0, -2.0]})
    with pytest.raises(DataValidationError, match=r"'stars' has 2 negative value\(s\), first at rows \[1, 3\].*threshold="):
        aerec.EASE().fit(frame, rating="stars")
    assert len(aerec.EASE().fit(frame, rating="stars", threshold=4).items_) == 1  # what the message suggests works


@pytest.mark.parametrize("bad_k", [0, -1, 2.5, "3", True])
def test_k_errors_come_from_aerec(small_positives, bad_k):
    model = aerec.Popularity().fit(small_positives)
    with pytest.raises(InvalidParameterError, match=f"k must be a positive integer, got {bad_k!r}"):
        model.recommend([1], k=bad_k)
    assert issubclass(InvalidParameterError, (AerecError, ValueError))


def test_unseen_categories_in_a_table_are_counted():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 10, "colour": ["red", "blue", "red", None] * 10})
    model = aerec.TableAutoencoder(hidden_dim=4, epochs=2, seed=0).fit(frame)
    new = pd.DataFrame({"x": [1.0, np.nan, 3.0], "colour": ["green", "mauve", "red"]})
    with pytest.warns(UnknownIdsWarning, match=r"unseen at fit time are read as missing: \{'colour': 2\}"):
        filled = model.impute(new)
    assert filled["colour"].tolist() == ["green", "mauve", "red"]  # observed cells are never changed


def test_an_unknown_hyperparameter_is_named():
    with pytest.raises(InvalidParameterError, match=r"MultDAE has no parameter 'latent_dim'; its parameters are"):
        aerec.MultDAE().set_params(latent_dim=8)


def test_warnings_count_ignored_history_items(small_positives):
    model = aerec.Popularity().fit(small_positives)
    history = pd.DataFrame({"user": ["new"] * 3, "item": [small_positives["item"].iloc[0], "x", "y"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.recommend_for_history(history, k=2)
    assert any("ignored 2 of 3 row(s)" in str(w.message) for w in caught)
