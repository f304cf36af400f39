"""The recommender contract, written once: every model's test class mixes this in and says how to build it.

A subclass sets ``make_model(self)`` returning an unfitted estimator; class attributes:
``history_is_fold_in`` (True when ``recommend_for_history`` on a training user's own history
gives the same list as ``recommend`` for that user; CDAE-like models with per-user parameters
set False).
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import DataValidationError, NotFittedError, UnknownIdError, UnknownIdsWarning


class RecommenderContract:
    history_is_fold_in = True

    def make_model(self):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def data(cls, small_positives):
        return small_positives

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data):
        return cls().make_model().fit(data)

    @pytest.fixture(scope="class")
    @classmethod
    def item_features(cls, ml100k):
        return ml100k.items[["item", "title", "release_date", "genres"]]

    # --- fit ---------------------------------------------------------------------------
    def test_fit_returns_self_and_keeps_params(self, data):
        model = self.make_model()
        params = model.get_params()
        assert model.fit(data) is model
        assert model.get_params() == params  # fit never rewrites hyperparameters
        assert model.is_fitted

    def test_clone_is_unfitted_with_same_params(self, fitted):
        twin = aerec.clone(fitted)
        assert twin.get_params() == fitted.get_params()
        assert not twin.is_fitted

    def test_not_fitted_raises(self):
        with pytest.raises(NotFittedError, match="not fitted"):
            self.make_model().recommend([1], k=5)

    def test_same_seed_same_recommendations(self, data, fitted):
        again = self.make_model().fit(data)
        users = data["user"].unique()[:20]
        pd.testing.assert_frame_equal(again.recommend(users, k=10), fitted.recommend(users, k=10))

    # --- recommend ---------------------------------------------------------------------
    def test_recommend_shape_order_and_ids(self, data, fitted):
        users = list(data["user"].unique()[:15])[::-1]
        recs = fitted.recommend(users, k=7)
        assert list(recs.columns) == ["user", "item", "score", "rank"]
        assert list(pd.unique(recs["user"])) == users  # the order given
        assert (recs.groupby("user").size() == 7).all()
        assert set(recs["item"]) <= set(data["item"])
        for _, group in recs.groupby("user"):
            assert group["rank"].tolist() == list(range(1, 8))
            assert (np.diff(group["score"].to_numpy()) <= 0).all()

    def test_recommend_excludes_seen_items(self, data, fitted):
        users = data["user"].unique()[:30]
        recs = fitted.recommend(users, k=20)
        seen = set(map(tuple, data[["user", "item"]].to_numpy()))
        assert not any((u, i) in seen for u, i in recs[["user", "item"]].to_numpy())
        with_seen = fitted.recommend(users, k=20, exclude_seen=False)
        assert any((u, i) in seen for u, i in with_seen[["user", "item"]].to_numpy())

    def test_scores_are_codes_dot_item_codes_plus_bias(self, data, fitted):
        users = data["user"].unique()[:10]
        recs = fitted.recommend(users, k=5)
        h = fitted.user_codes(users)
        W = fitted.item_codes()
        expected = np.einsum("ij,ij->i", h.loc[recs["user"]].to_numpy(dtype=np.float64),
                             W.loc[recs["item"]].drop(columns="bias").to_numpy(dtype=np.float64))
        expected += W.loc[recs["item"], "bias"].to_numpy()
        np.testing.assert_allclose(recs["score"].to_numpy(), expected, rtol=1e-4, atol=1e-4)

    def test_candidate_items_restrict_ranking(self, data, fitted):
        user = data["user"].iloc[0]
        seen = set(data.loc[data["user"] == user, "item"])
        candidates = [i for i in data["item"].unique() if i not in seen][:12]
        recs = fitted.recommend([user], k=12, items=candidates)
        assert sorted(recs["item"]) == sorted(candidates)

    def test_unknown_users(self, data, fitted):
        known = data["user"].iloc[0]
        with pytest.raises(UnknownIdError, match="unknown user id.*-999"):
            fitted.recommend([known, -999], k=5)
        skipped = fitted.recommend([known, -999], k=5, on_unknown="skip")
        assert set(skipped["user"]) == {known}
        popular = fitted.recommend([-999, known], k=5, on_unknown="popular")
        assert list(pd.unique(popular["user"])) == [-999, known]
        top = pd.Series(fitted.item_popularity_, index=fitted.items_.ids).sort_values(ascending=False, kind="stable")
        assert popular.loc[popular["user"] == -999, "item"].tolist() == top.index[:5].tolist()

    def test_k_larger_than_catalogue(self, fitted):
        n = len(fitted.items_)
        with pytest.raises(ValueError, match=f"k={n + 1} is larger than the {n} candidate"):
            fitted.recommend([fitted.users_.ids[0]], k=n + 1)
        with pytest.raises(ValueError, match="positive integer"):
            fitted.recommend([fitted.users_.ids[0]], k=0)

    # --- fold-in -------------------------------------------------------------------------
    def test_recommend_for_history_excludes_history(self, data, fitted):
        history = data[data["user"].isin(data["user"].unique()[:5])].assign(user=lambda d: "new-" + d["user"].astype(str))
        recs = fitted.recommend_for_history(history, k=10)
        assert (recs.groupby("user").size() == 10).all()
        given = set(map(tuple, history[["user", "item"]].to_numpy()))
        assert not any((u, i) in given for u, i in recs[["user", "item"]].to_numpy())

    def test_history_of_training_user_matches_recommend(self, data, fitted):
        if not self.history_is_fold_in:
            pytest.skip("this model's user codes are not a function of the history alone")
        user = data["user"].iloc[0]
        history = data[data["user"] == user]
        a = fitted.recommend([user], k=10)
        b = fitted.recommend_for_history(history, k=10)
        assert a["item"].tolist() == b["item"].tolist()
        np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-5)

    def test_history_with_unknown_items_warns_with_count(self, data, fitted):
        history = pd.DataFrame({"user": ["x", "x", "x"], "item": [data["item"].iloc[0], "nope-1", "nope-2"]})
        with pytest.warns(UnknownIdsWarning, match="ignored 2 of 3 row"):
            recs = fitted.recommend_for_history(history, k=5)
        assert len(recs) == 5

    def test_empty_history_is_an_error(self, fitted):
        with pytest.raises(DataValidationError, match="history is empty"):
            fitted.recommend_for_history(pd.DataFrame({"user": [], "item": []}), k=5)

    # --- similar items, codes ------------------------------------------------------------
    def test_similar_items(self, data, fitted):
        items = list(data["item"].unique()[:4])
        sim = fitted.similar_items(items, k=6)
        assert list(sim.columns) == ["item", "similar_item", "score", "rank"]
        assert (sim.groupby("item").size() == 6).all()
        assert not (sim["item"] == sim["similar_item"]).any()
        with pytest.raises(UnknownIdError, match="unknown item id"):
            fitted.similar_items(["no-such-item"], k=3)

    def test_codes_are_frames_indexed_by_ids(self, data, fitted):
        users = list(data["user"].unique()[:3])
        h = fitted.user_codes(users)
        assert h.index.tolist() == users
        W = fitted.item_codes()
        assert set(W.index) == set(data["item"]) and "bias" in W.columns
        assert h.shape[1] == W.shape[1] - 1

    # --- saving ---------------------------------------------------------------------------
    def test_save_load_gives_identical_outputs(self, tmp_path, data, fitted):
        fitted.save(tmp_path / "bundle")
        same = aerec.load(tmp_path / "bundle")
        assert type(same) is type(fitted) and same.get_params() == fitted.get_params()
        users = data["user"].unique()[:25]
        pd.testing.assert_frame_equal(same.recommend(users, k=10), fitted.recommend(users, k=10))
        history = data[data["user"] == users[0]].assign(user="newcomer")
        pd.testing.assert_frame_equal(same.recommend_for_history(history, k=10), fitted.recommend_for_history(history, k=10))
        items = data["item"].unique()[:3]
        pd.testing.assert_frame_equal(same.similar_items(items, k=5), fitted.similar_items(items, k=5))
        for path in (tmp_path / "bundle").rglob("*"):  # parts (the index, a content model) in subdirectories
            assert path.is_dir() or path.suffix in (".json", ".parquet", ".npz", ".keras", ".faiss"), path

    # --- the FAISS index ---------------------------------------------------------------------
    def test_exact_index_top_k_equals_model_top_k(self, data, fitted):
        users = data["user"].unique()[:60]
        by_model = fitted.recommend(users, k=20)
        by_index = fitted.recommend(users, k=20, via="index")
        assert fitted.index_.is_exact
        _same_rankings(by_model, by_index, "user", "item")
        history = data[data["user"].isin(users[:10])].assign(user=lambda d: "new-" + d["user"].astype(str))
        _same_rankings(fitted.recommend_for_history(history, k=15),
                       fitted.recommend_for_history(history, k=15, via="index"), "user", "item")
        items = data["item"].unique()[:10]
        _same_rankings(fitted.similar_items(items, k=10, via="model"), fitted.similar_items(items, k=10),
                       "item", "similar_item")

    def test_index_excludes_seen_and_still_returns_k(self, data, fitted):
        user = data["user"].value_counts().index[0]  # the user with the most training items
        recs = fitted.recommend([user], k=25, via="index")
        seen = set(data.loc[data["user"] == user, "item"])
        assert len(recs) == 25 and not seen & set(recs["item"])

    def test_approximate_index_reports_its_recall(self, data, fitted):
        approx = aerec.clone(fitted).fit(data).build_index("hnsw", recall_target=0.9)
        assert not approx.index_.is_exact and approx.index_.measured_recall_ >= 0.9
        users = data["user"].unique()[:40]
        exact = approx.recommend(users, k=10)
        found = approx.recommend(users, k=10, via="index")
        assert len(found) == 400
        seen = set(map(tuple, data[["user", "item"]].to_numpy()))
        assert not any((u, i) in seen for u, i in found[["user", "item"]].to_numpy())
        overlap = len(set(map(tuple, exact[["user", "item"]].to_numpy())) & set(map(tuple, found[["user", "item"]].to_numpy())))
        assert overlap / 400 >= 0.8

    # --- cold-start items -------------------------------------------------------------------
    def test_add_items_from_features(self, tmp_path, data, item_features):
        items = np.sort(data["item"].unique())
        cold = items[::6]
        warm = data[~data["item"].isin(cold)]
        # the softmax head: it reads the model's user codes of partial histories (the default ridge reads fewer)
        content = aerec.ContentModel(loss="softmax", hidden_dim=16, epochs=2, validation_fraction=0.1)
        model = self.make_model().fit(warm, item_features=item_features[item_features["item"].isin(warm["item"])],
                                      content=content)
        assert model.add_items(item_features[item_features["item"].isin(cold)]) is model
        users = warm["user"].unique()[:20]
        recs = model.recommend(users, k=5, items=cold)
        assert set(recs["item"]) <= set(cold) and (recs.groupby("user").size() == 5).all()
        _same_rankings(model.recommend(users, k=30), model.recommend(users, k=30, via="index"), "user", "item")
        _same_rankings(model.similar_items(cold[:3], k=5, via="model"), model.similar_items(cold[:3], k=5),
                       "item", "similar_item")
        model.save(tmp_path / "bundle")
        same = aerec.load(tmp_path / "bundle")
        pd.testing.assert_frame_equal(same.recommend(users, k=10), model.recommend(users, k=10))
        pd.testing.assert_frame_equal(same.similar_items(cold[:3], k=5), model.similar_items(cold[:3], k=5))


def _same_rankings(a, b, key, item, tol=1e-4):
    """Same items in the same order, except that items whose scores tie (within ``tol``) may swap,
    and the last tie group may be cut at k differently."""
    assert len(a) == len(b) and a[key].tolist() == b[key].tolist()
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=tol, atol=tol)
    for (_, ga), (_, gb) in zip(a.groupby(key, sort=False), b.groupby(key, sort=False)):
        scores = ga["score"].to_numpy()
        group = np.concatenate([[0], np.cumsum(np.diff(scores) < -tol)])  # tie groups by score
        for g in np.unique(group)[:-1]:  # every group but the last, which k may cut
            in_group = group == g
            assert set(ga[item].to_numpy()[in_group]) == set(gb[item].to_numpy()[in_group]), (ga, gb)
