"""AutoRec: rating prediction on (a slice of) MovieLens-100K, fallbacks, saving, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import DataValidationError, MissingColumnError, NotFittedError, UnknownIdsWarning
from aerec import AutoRec
from aerec.models.autorec import AutoRecNetwork, LocalKernelDense, masked_squared_error

FAST = {"hidden_dim": 32, "epochs": 300, "patience": 30, "learning_rate": 1e-2}


@pytest.fixture(scope="module")
def fold(ml100k):
    """u1.base / u1.test restricted to the 300 most rated items and the first 300 users: small, real."""
    base, test = ml100k.fold(1)
    items = base["item"].value_counts().index[:300]
    keep = lambda df: df[df["item"].isin(items) & (df["user"] <= 300)].reset_index(drop=True)  # noqa: E731
    return keep(base), keep(test)


@pytest.fixture(scope="module")
def item_model(fold):
    return AutoRec(kind="item", seed=0, **FAST).fit(fold[0])


# --- predictions ------------------------------------------------------------------------


def test_predict_returns_the_pairs_with_a_clipped_rating_column(item_model, fold):
    test = fold[1]
    pairs = test.drop(columns="rating").set_index(pd.Index([f"r{j}" for j in range(len(test))]))
    out = item_model.predict(pairs)
    assert out.index.equals(pairs.index)
    assert list(out.columns) == list(pairs.columns) + ["rating"]
    assert "rating" not in pairs.columns  # a copy: the input is unchanged
    assert out["rating"].between(1, 5).all() and out["rating"].dtype == np.float64
    replaced = item_model.predict(test)  # an existing rating column is replaced
    np.testing.assert_array_equal(replaced["rating"].to_numpy(), out["rating"].to_numpy())


def test_autorec_beats_the_item_mean_on_held_out_ratings(item_model, fold):
    base, test = fold
    predicted = item_model.predict(test)["rating"]
    item_mean = test["item"].map(base.groupby("item")["rating"].mean()).fillna(base["rating"].mean())
    assert aerec.metrics.rmse(test["rating"], predicted) < aerec.metrics.rmse(test["rating"], item_mean) - 0.02


def test_the_loss_counts_observed_ratings_only():
    y = np.array([[5.0, 0.0, 3.0]], dtype="float32")
    mask = np.array([[1.0, 0.0, 1.0]], dtype="float32")
    pred = np.array([[4.0, 1.0, 3.0]], dtype="float32")
    assert float(masked_squared_error(y, mask, pred)) == pytest.approx(0.5)
    assert float(masked_squared_error(y, mask, pred + np.array([[0, 9, 0]], "float32"))) == pytest.approx(0.5)


def test_unseen_ids_get_the_documented_fallback_and_a_warning(item_model, fold):
    base, _ = fold
    known_user, known_item = base["user"].iloc[0], base["item"].iloc[0]
    pairs = pd.DataFrame({"user": [known_user, -1, -1, known_user], "item": [-7, known_item, -7, known_item]})
    with pytest.warns(UnknownIdsWarning, match=r"3 of 4 pair\(s\).*2 with an unknown user, 2 with an unknown item"):
        out = item_model.predict(pairs)["rating"].to_numpy()
    # with the baseline (the default): the known id's regularised baseline, or the global mean
    u, i = item_model.users_.index_of([known_user])[0], item_model.items_.index_of([known_item])[0]
    assert out[0] == pytest.approx(item_model.global_mean_ + item_model.user_bias_[u])
    assert out[1] == pytest.approx(item_model.global_mean_ + item_model.item_bias_[i])
    assert out[2] == pytest.approx(item_model.global_mean_)
    raw_user_mean = base.loc[base["user"] == known_user, "rating"].mean()
    assert abs(out[0] - item_model.global_mean_) < abs(raw_user_mean - item_model.global_mean_) + 1e-9  # shrunk
    # without it, as in the paper: the plain means of the training ratings
    plain = AutoRec(kind="item", baseline=False, seed=0, **{**FAST, "epochs": 3}).fit(base)
    with pytest.warns(UnknownIdsWarning):
        out = plain.predict(pairs)["rating"].to_numpy()
    assert out[0] == pytest.approx(base.loc[base["user"] == known_user, "rating"].mean())
    assert out[1] == pytest.approx(base.loc[base["item"] == known_item, "rating"].mean())
    assert out[2] == pytest.approx(base["rating"].mean())


def test_complete_is_a_dense_block_that_agrees_with_predict(item_model, fold):
    users, items = [1, 2, 3], list(fold[0]["item"].unique()[:4])
    block = item_model.complete(users=users, items=items)
    assert block.shape == (3, 4) and list(block.index) == users and list(block.columns) == items
    assert block.index.name == "user" and block.columns.name == "item"
    pairs = pd.DataFrame({"user": np.repeat(users, 4), "item": np.tile(items, 3)})
    np.testing.assert_allclose(block.to_numpy().ravel(), item_model.predict(pairs)["rating"].to_numpy())
    full = item_model.complete()
    assert full.shape == (len(item_model.users_), len(item_model.items_)) and not full.isna().any().any()


def test_other_column_names(fold):
    base, test = fold
    renamed = base.rename(columns={"user": "who", "item": "what", "rating": "stars"})
    model = AutoRec(seed=0, **{**FAST, "epochs": 3}).fit(renamed, user="who", item="what", rating="stars")
    out = model.predict(test.rename(columns={"user": "who", "item": "what"}).drop(columns="rating"))
    assert "stars" in out.columns
    assert model.complete(users=[1], items=[base["item"].iloc[0]]).index.name == "who"


def test_both_kinds_ensemble_is_no_worse_on_validation_than_either(fold):
    model = AutoRec(kind="both", seed=0, **FAST).fit(fold[0])
    rmse = model.validation_rmse_
    assert set(model.networks_) == {"item", "user"} and 0.0 <= model.ensemble_weight_ <= 1.0
    assert rmse["both"] <= min(rmse["item"], rmse["user"]) + 1e-12


def test_glocal_kernels_train_in_two_stages_and_round_trip(fold, tmp_path):
    model = AutoRec(kind="item", kernel_dim=3, global_kernel_size=3, seed=0,
                    **{**FAST, "epochs": 8, "patience": 3}).fit(fold[0])
    net = model.networks_["item"]
    assert len(model.history_["item"]["stage_epochs"]) == 2
    # the fine-tuned model is kept only when it beat the pre-trained one on validation ratings
    fine_tuned = "global_kernel_used" not in model.history_["item"]
    assert float(net.global_gate.numpy()) == float(fine_tuned)
    assert (np.abs(net.row_summary.numpy()).sum() > 0) == fine_tuned
    kernel = np.asarray(net.hidden_layers[0].local_kernel())
    assert isinstance(net.hidden_layers[0], LocalKernelDense) and kernel.min() >= 0 and kernel.max() <= 1
    model.save(tmp_path / "glocal")
    same = aerec.load(tmp_path / "glocal")
    np.testing.assert_array_equal(same.predict(fold[1])["rating"].to_numpy(), model.predict(fold[1])["rating"].to_numpy())


# --- saving and determinism -------------------------------------------------------------


def test_save_load_round_trip_gives_the_same_predictions(item_model, fold, tmp_path):
    item_model.save(tmp_path / "autorec")
    same = aerec.load(tmp_path / "autorec")
    assert isinstance(same, AutoRec) and same.get_params() == item_model.get_params()
    pd.testing.assert_frame_equal(same.predict(fold[1]), item_model.predict(fold[1]))
    pd.testing.assert_frame_equal(same.complete(users=[1, 2]), item_model.complete(users=[1, 2]))
    assert same.rating_range_ == item_model.rating_range_ == (1.0, 5.0)
    files = sorted(p.name for p in (tmp_path / "autorec").iterdir())
    assert files == ["autorec_item.keras", "items.parquet", "means.npz", "meta.json", "ratings.npz", "users.parquet"]


def test_network_config_round_trips():
    net = AutoRecNetwork(7, hidden=(5, 4), l2=0.01, dropout=0.1, kernel_dim=2, sparsity=0.5, global_kernel_size=3,
                         n_rows=6, seed=1)
    config = net.get_config()
    assert (config["n_inputs"], config["hidden"], config["l2"], config["kernel_dim"], config["global_kernel_size"],
            config["n_rows"]) == (7, [5, 4], 0.01, 2, 3, 6)
    assert AutoRecNetwork.from_config(config).get_config() == config


def test_same_seed_same_predictions(fold):
    params = {**FAST, "epochs": 5}
    first = AutoRec(seed=5, **params).fit(fold[0]).predict(fold[1])["rating"].to_numpy()
    again = AutoRec(seed=5, **params).fit(fold[0]).predict(fold[1])["rating"].to_numpy()
    other = AutoRec(seed=6, **params).fit(fold[0]).predict(fold[1])["rating"].to_numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


# --- bad input: each error names the column at fault -------------------------------------


def test_ratings_outside_the_declared_range_name_the_column(fold):
    ratings = fold[0].rename(columns={"rating": "stars"})
    ratings.loc[3, "stars"] = 11
    with pytest.raises(DataValidationError, match=r"column 'stars' has 1 value\(s\) outside rating_range=\(1, 5\).*\[3\]"):
        AutoRec(rating_range=(1, 5), **FAST).fit(ratings, rating="stars")


def test_missing_rating_column_is_named(fold):
    with pytest.raises(MissingColumnError, match=r"no column\(s\) \['score'\]"):
        AutoRec(**FAST).fit(fold[0], rating="score")


def test_non_numeric_ratings_name_the_column(fold):
    ratings = fold[0].astype({"rating": object})
    ratings.loc[5, "rating"] = "five"
    with pytest.raises(DataValidationError, match=r"column 'rating' must be numeric"):
        AutoRec(**FAST).fit(ratings)


def test_null_ids_in_pairs_name_the_column(item_model):
    with pytest.raises(DataValidationError, match=r"column 'item' has 1 null id"):
        item_model.predict(pd.DataFrame({"user": [1, 2], "item": [1, None]}))


def test_bad_parameters_are_refused(fold):
    with pytest.raises(ValueError, match="kind must be one of"):
        AutoRec(kind="movie").fit(fold[0])
    with pytest.raises(ValueError, match="global_kernel_size needs batch_size=None"):
        AutoRec(global_kernel_size=3, batch_size=64).fit(fold[0])
    with pytest.raises(ValueError, match="rating_range must be"):
        AutoRec(rating_range=(5, 1)).fit(fold[0])


def test_not_fitted(fold):
    with pytest.raises(NotFittedError):
        AutoRec().predict(fold[1])


def test_no_warning_when_every_id_is_known(item_model, fold):
    known = fold[1][fold[1]["user"].isin(item_model.users_.ids) & fold[1]["item"].isin(item_model.items_.ids)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", aerec.exceptions.AerecWarning)
        item_model.predict(known)


def test_global_kernel_starts_as_the_identity():
    net = AutoRecNetwork(5, hidden=(4,), global_kernel_size=3, n_rows=6, seed=0)
    x = np.random.default_rng(0).integers(0, 6, (6, 5)).astype("float32")
    before = np.asarray(net(x))
    net.set_row_summary(np.linspace(1, 5, 6))
    assert float(net.global_gate.numpy()) == 1.0
    np.testing.assert_allclose(np.asarray(net(x)), before, rtol=1e-5, atol=1e-5)
    net.global_weights.assign(net.global_weights.numpy() + 0.1)
    assert not np.allclose(np.asarray(net(x)), before, atol=1e-3)  # and the convolution is really on


def test_refit_trains_again_on_every_rating_for_the_best_number_of_epochs(fold):
    model = AutoRec(refit=True, seed=0, **{**FAST, "epochs": 30, "patience": 5}).fit(fold[0])
    history = model.history_["item"]
    assert history["refit_epochs"] == history["best_epochs"]
    assert 1 <= history["best_epochs"][0] <= history["stage_epochs"][0]


def test_on_sparse_ratings_it_is_no_worse_than_the_bias_baseline(ml100k):
    """u1.base thinned to a tenth of each user's ratings: AutoRec keeps to the baseline where its networks do not
    beat it on validation, so it does not lose to the biases alone on u1.test."""
    from aerec.recommend.autorec import user_item_biases

    base, test = ml100k.fold(1)
    r = np.random.default_rng(1).random(len(base))
    rank = pd.Series(r, index=base.index).groupby(base["user"]).rank(method="first")
    sparse = base[rank <= np.maximum(1, np.round(0.1 * base.groupby("user")["user"].transform("size")))]
    model = AutoRec(seed=0, rating_range=(1, 5), **{**FAST, "patience": 10}).fit(sparse)
    ours = aerec.metrics.rmse(test["rating"], model.predict(test[["user", "item"]])["rating"])
    X = aerec.Interactions.from_frame(sparse, rating="rating")
    mu, bu, bi = user_item_biases(X.matrix, model.bias_l2_)
    u, i = X.users.index_of(test["user"], on_unknown="mark"), X.items.index_of(test["item"], on_unknown="mark")
    biases = np.clip(mu + np.where(u >= 0, bu[np.maximum(u, 0)], 0) + np.where(i >= 0, bi[np.maximum(i, 0)], 0), 1, 5)
    assert ours <= aerec.metrics.rmse(test["rating"], biases) + 1e-3
    assert model.validation_rmse_["final"] <= model.validation_rmse_["baseline"]
    plain = AutoRec(seed=0, rating_range=(1, 5), baseline=False, **{**FAST, "patience": 10}).fit(sparse)
    assert ours < aerec.metrics.rmse(test["rating"], plain.predict(test[["user", "item"]])["rating"]) - 0.02
