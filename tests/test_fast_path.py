"""The NumPy inference path of the Keras recommenders: the same user codes as the Keras networks (up to
float32 rounding) for training users and for folded-in users, on real fitted models, and never stale."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import aerec
from aerec.models.vae import MultinomialAutoencoder
from aerec.recommend.keras_base import _numpy_user_code

TOL = {"rtol": 1e-4, "atol": 1e-5}

MODELS = {
    "MultVAE": lambda: aerec.MultVAE(hidden_dim=64, code_dim=16, epochs=5, batch_size=100, seed=0),
    "MultDAE": lambda: aerec.MultDAE(code_dim=32, epochs=5, batch_size=100, seed=0),  # no hidden layer
    "MultDAE-hidden": lambda: aerec.MultDAE(hidden_dim=48, code_dim=16, epochs=5, batch_size=100, seed=0),
    "CDAE": lambda: aerec.CDAE(code_dim=32, epochs=5, batch_size=100, seed=0),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request, small_positives):
    return MODELS[request.param]().fit(small_positives)


def keras_codes(model, rows, user_index):
    dense = np.asarray(rows.toarray(), dtype=np.float32)
    if model.with_user_index:
        users = np.full(rows.shape[0], -1, np.int32) if user_index is None else np.asarray(user_index, np.int32)
        return np.asarray(model.network_.user_code(dense, users))
    return np.asarray(model.network_.user_code(dense))


def fold_in_rows(model, small_positives, n=40):
    """Histories of 40 new users: random sets of 1 to 60 known items, as a fold-in request builds them."""
    rng = np.random.default_rng(1)
    n_items = len(model.items_)
    cols = [np.unique(rng.choice(n_items, rng.integers(1, 61), replace=False)) for _ in range(n)]
    indptr = np.cumsum([0] + [len(c) for c in cols])
    return sp.csr_matrix((np.ones(indptr[-1], np.float32), np.concatenate(cols), indptr), shape=(n, n_items))


def test_numpy_codes_equal_keras_for_training_users(fitted):
    X = fitted.interactions_.matrix
    users = np.arange(X.shape[0])
    fast = fitted._user_vectors(X, users)
    assert _numpy_user_code(fitted.network_, X, users if fitted.with_user_index else None) is not None
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, keras_codes(fitted, X, users), **TOL)


def test_numpy_codes_equal_keras_for_fold_in_users(fitted, small_positives):
    rows = fold_in_rows(fitted, small_positives)
    np.testing.assert_allclose(fitted._user_vectors(rows, None), keras_codes(fitted, rows, None), **TOL)
    # one row at a time, as the server asks
    for r in range(3):
        np.testing.assert_allclose(fitted._user_vectors(rows[r:r + 1], None), keras_codes(fitted, rows[r:r + 1], None),
                                   **TOL)


def test_cdae_uses_the_user_offset_only_for_training_users(small_positives):
    model = MODELS["CDAE"]().fit(small_positives)
    X = model.interactions_.matrix[:20]
    own = model._user_vectors(X, np.arange(20))
    folded = model._user_vectors(X, None)
    assert np.abs(own - folded).max() > 1e-4  # the offsets were learned: a test that can fail
    np.testing.assert_allclose(folded, keras_codes(model, X, None), **TOL)
    mixed = np.array([3, -1, 5, -1] * 5, dtype=np.int32)
    np.testing.assert_allclose(model.network_.numpy_user_code(X, mixed), keras_codes(model, X, mixed), **TOL)


def test_dense_and_sparse_inputs_agree(fitted):
    X = fitted.interactions_.matrix[:10]
    users = np.arange(10) if fitted.with_user_index else None
    np.testing.assert_allclose(fitted.network_.numpy_user_code(X.toarray(), users),
                               fitted.network_.numpy_user_code(X, users), rtol=1e-5, atol=1e-6)


def test_recommendations_are_the_keras_ones(fitted, small_positives):
    """Same top-10 through the index for every training user as ranking with the Keras codes."""
    X = fitted.interactions_.matrix
    users = np.arange(X.shape[0])
    W, b = fitted._item_vectors()
    scores = keras_codes(fitted, X, users) @ W.T + b
    scores[X.nonzero()] = -np.inf
    keras_top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    served = fitted.recommend(list(fitted.users_.ids), k=10, via="index")
    top = fitted.items_.index_of(served["item"]).reshape(-1, 10)
    same = (top == keras_top).all(axis=1).mean()
    assert same >= 0.99, same  # float32 rounding may swap a near-tie, rarely


def test_saved_and_loaded_network_has_the_fast_path(fitted, tmp_path):
    fitted.save(tmp_path / "b")
    same = aerec.load(tmp_path / "b")
    X = fitted.interactions_.matrix[:15]
    users = np.arange(15)
    np.testing.assert_allclose(same._user_vectors(X, users), keras_codes(fitted, X, users), **TOL)


def test_snapshot_is_never_stale(small_positives):
    """No NumPy path while the network trains; fit and set_weights drop the snapshot."""
    import keras

    model = MODELS["MultVAE"]().fit(small_positives)
    net = model.network_
    X = model.interactions_.matrix[:8]
    before = net.numpy_user_code(X)  # takes the snapshot

    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(self.model.numpy_user_code(X))

    net.compile(optimizer=keras.optimizers.Adam(1e-2))
    net.fit(X.toarray(), epochs=2, batch_size=4, verbose=0, callbacks=[Probe()])
    assert seen and all(s is None for s in seen)
    after = net.numpy_user_code(X)
    assert np.abs(after - before).max() > 1e-4  # the weights moved ...
    np.testing.assert_allclose(after, np.asarray(net.user_code(X.toarray())), **TOL)  # ... and the snapshot with them

    net.set_weights([w * 0.5 for w in net.get_weights()])
    np.testing.assert_allclose(net.numpy_user_code(X), np.asarray(net.user_code(X.toarray())), **TOL)


def test_networks_without_a_matching_numpy_path_use_keras(small_positives):
    """A subclass that changes the Keras computation (RecVAE-like) but not numpy_user_code gets none,
    and a network without numpy_user_code at all is served by Keras."""

    class Doubled(MultinomialAutoencoder):
        def user_code(self, x):
            return super().user_code(x) * 2.0

    net = Doubled(n_items=6, hidden_dim=4, latent_dim=2, seed=0)
    net.build((None, 6))
    x = sp.csr_matrix(np.eye(6, dtype=np.float32)[:2])
    assert net.numpy_user_code(x) is None

    model = MODELS["MultDAE"]().fit(small_positives)
    X = model.interactions_.matrix[:5]
    expected = keras_codes(model, X, None)

    class KerasOnly:  # the network interface without the NumPy path
        def __init__(self, inner):
            self.inner = inner

        def user_code(self, x):
            return self.inner.user_code(x)

    model.network_ = KerasOnly(model.network_)
    assert _numpy_user_code(model.network_, X, None) is None
    np.testing.assert_array_equal(model._user_vectors(X, None), expected)


def test_fold_in_through_the_public_api_matches_keras(small_positives):
    model = MODELS["MultVAE"]().fit(small_positives)
    history = small_positives[small_positives["user"].isin(small_positives["user"].unique()[:5])]
    got = model.recommend_for_history(history.assign(user=history["user"].map(lambda u: f"new{u}")), k=10)
    H = model._history_matrix(history, "user", "item").matrix
    W, b = model._item_vectors()
    scores = keras_codes(model, H, None) @ W.T + b
    scores[H.nonzero()] = -np.inf
    expected = model.items_.ids_of(np.argsort(-scores, axis=1, kind="stable")[:, :10].ravel())
    assert got["item"].tolist() == expected.tolist()
    assert isinstance(got, pd.DataFrame)


def test_recommend_all_streams_batches_to_parquet_and_never_leaves_half_a_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    split = aerec.evaluate.load_protocol_a("weak", 0)
    model = aerec.EASE(l2=200.0).fit(split["train"])
    monkeypatch.setattr(model, "_score_batch", 100)  # 943 users: ten row groups
    path = tmp_path / "recs.parquet"
    assert model.recommend_all(path, k=20, progress=False) == 20 * len(model.users_)
    assert pq.ParquetFile(path).num_row_groups == 10
    pd.testing.assert_frame_equal(pd.read_parquet(path), model.recommend(model.users_.ids, k=20))
    top = model.top_k(model.users_.ids, k=20)  # batched the same way
    assert top.items[:, 0].tolist() == pd.read_parquet(path).query("rank == 1")["item"].tolist()
    # a failure half-way leaves the earlier file as it was and no temporary file behind
    calls = {"n": 0}
    original = model._rank

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("out of memory in batch 3")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "_rank", failing)
    before = path.read_bytes()
    with pytest.raises(MemoryError):
        model.recommend_all(path, k=5, progress=False)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["recs.parquet"]


def test_top_k_is_a_stable_sort_with_ties_and_infinities():
    from aerec.recommend.base import top_k

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (200, 300)).astype(np.float32)  # many ties at every k-th value
    scores[:, :40] = -np.inf
    scores[:3] = -np.inf  # rows with fewer finite entries than k
    scores[1, 7] = 2.0
    idx, vals = top_k(scores, 25)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :25]  # best first, lower index on ties
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, order, axis=1))


def test_validation_check_in_fit_uses_the_numpy_path(small_positives, monkeypatch):
    """Early-stopping checks run between steps: on the weights of that moment through the NumPy path
    (the snapshot is dropped after each check, and fit's own state is restored)."""
    model = aerec.MultDAE(code_dim=16, epochs=3, batch_size=100, seed=0, patience=5)
    paths = []
    original = MultinomialAutoencoder.numpy_user_code

    def spy(self, x, users=None):
        out = original(self, x, users)
        paths.append(out is not None)
        return out

    monkeypatch.setattr(MultinomialAutoencoder, "numpy_user_code", spy)
    model.fit(small_positives, valid=small_positives.sample(frac=0.2, random_state=0))
    assert paths and all(paths)
    assert model.network_._numpy_fitting is False and model.network_._numpy_snapshot is None
