"""ItemKNN: the cosine item-neighbourhood baseline behind the recommender contract."""
import numpy as np
import pytest

import aerec
from aerec.exceptions import CatalogueTooLargeError

from contract import RecommenderContract


class TestItemKNNContract(RecommenderContract):
    def make_model(self):
        return aerec.ItemKNN(neighbours=50)


def brute_force_scores(X, neighbours, shrink):
    """The textbook definition, dense: cosine with shrinkage, each target item's top neighbours, x · S."""
    norms = np.sqrt((X ** 2).sum(axis=0))
    S = (X.T @ X) / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(S, 0.0)
    for j in range(S.shape[1]):
        S[np.argsort(-S[:, j], kind="stable")[neighbours:], j] = 0.0
    return X @ S


def test_scores_are_the_cosine_neighbourhood_of_the_history(small_positives):
    model = aerec.ItemKNN(neighbours=20, shrink=5.0).fit(small_positives)
    X = model.interactions_.matrix.toarray().astype(np.float64)
    X[X > 0] = 1.0
    expected = brute_force_scores(X, 20, 5.0)
    users = small_positives["user"].unique()[:8]
    rows = model.users_.index_of(users)
    recs = model.recommend(users, k=10)
    for n, user in enumerate(users):
        want = np.where(X[rows[n]] > 0, -np.inf, expected[rows[n]])
        np.testing.assert_allclose(recs[recs["user"] == user]["score"], np.sort(want)[::-1][:10], rtol=1e-4)
    # blocks of target items give the same matrix as one block
    from aerec.recommend.itemknn import cosine_neighbours

    one = cosine_neighbours(model.interactions_.matrix, 20, 5.0, block=10_000)
    small = cosine_neighbours(model.interactions_.matrix, 20, 5.0, block=37)
    assert abs(one - small).max() < 1e-6 and one.nnz == small.nnz


def test_fold_in_is_exact_and_the_index_holds_the_similarities(small_positives):
    model = aerec.ItemKNN().fit(small_positives)
    user = small_positives["user"].iloc[0]
    history = small_positives[small_positives["user"] == user]
    assert (model.recommend_for_history(history, k=10)["item"].tolist()
            == model.recommend([user], k=10)["item"].tolist())
    codes = model.item_codes()
    assert codes.shape == (len(model.items_), len(model.items_) + 1)  # the similarity columns, and bias 0
    assert (codes["bias"] == 0).all()


def test_the_dense_codes_are_refused_when_they_would_not_fit(small_positives, monkeypatch):
    model = aerec.ItemKNN().fit(small_positives)
    monkeypatch.setattr("aerec.recommend.itemknn.available_memory", lambda: 1000)
    with pytest.raises(CatalogueTooLargeError, match="via='model'"):
        model.build_index("flat")
    assert len(model.recommend([small_positives["user"].iloc[0]], k=5)) == 5  # the sparse path needs no codes
