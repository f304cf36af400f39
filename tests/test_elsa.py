"""ELSA: the shallow low-rank autoencoder (EASE's objective with ``B = A Aᵀ - I``)."""
import numpy as np
import pytest

import aerec

from contract import RecommenderContract


class TestELSAContract(RecommenderContract):
    def make_model(self):
        return aerec.ELSA(code_dim=32, epochs=3)


@pytest.fixture(scope="module")
def a1():
    return aerec.evaluate.load_protocol_a("weak", 0)


def test_scores_are_the_low_rank_ease_of_the_history(small_positives):
    model = aerec.ELSA(code_dim=16, epochs=2).fit(small_positives)
    A = model.item_codes().drop(columns="bias").to_numpy()
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), 1.0, rtol=1e-5)  # unit-length item rows
    users = small_positives["user"].unique()[:5]
    X = model.interactions_.matrix[model.users_.index_of(users)].toarray()
    expected = X @ A @ A.T - X  # the paper's prediction; the -X only touches seen items
    np.testing.assert_allclose(np.asarray(model.network_(X.astype("float32"))), expected, rtol=1e-4, atol=1e-4)
    recs = model.recommend(users, k=10)
    for n, user in enumerate(users):
        got = recs[recs["user"] == user]
        want = np.where(X[n] > 0, -np.inf, expected[n])
        np.testing.assert_allclose(got["score"], np.sort(want)[::-1][:10], rtol=1e-4, atol=1e-4)
    # no user parameters: a training user's own history folds in to the same list
    history = small_positives[small_positives["user"] == users[0]]
    same = model.recommend_for_history(history, k=10)
    assert same["item"].tolist() == recs[recs["user"] == users[0]]["item"].tolist()


def test_within_two_percent_of_ease_on_a1_seed0(a1):
    ease = aerec.EASE(l2=200.0).fit(a1["train"])
    elsa = aerec.ELSA().fit(a1["train"])
    ndcg = {type(m).__name__: aerec.evaluate.evaluate_weak(m, a1["test"], exclude=a1["valid"]).mean()["ndcg@100"]
            for m in (ease, elsa)}
    # measured: EASE 0.4305, ELSA (defaults: 8 epochs, no validation) 0.4360
    assert ndcg["ELSA"] >= 0.98 * ndcg["EASE"], ndcg


def test_the_loss_from_codes_equals_the_dense_loss_and_its_gradient():
    import tensorflow as tf

    from aerec.models.elsa import ShallowLowRankAutoencoder, normalized_squared_error

    rng = np.random.default_rng(0)
    x = (rng.random((6, 40)) < 0.2).astype("float32") * rng.integers(1, 4, (6, 40)).astype("float32")
    x[3] = 0.0  # an empty row costs 0 in both forms
    net = ShallowLowRankAutoencoder(n_items=40, code_dim=8, seed=1)
    net.build((None, 40))
    losses, grads = [], []
    for batch in (tf.constant(x), tf.sparse.from_dense(x)):
        with tf.GradientTape() as tape:
            loss = net.compute_loss(batch, None, net(batch, training=True))
        losses.append(float(loss))
        grads.append(tape.gradient(loss, net.items).numpy())
    assert losses[0] == pytest.approx(float(normalized_squared_error(x, x @ net.item_vectors().numpy()
                                                                     @ net.item_vectors().numpy().T - x)))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-3, atol=1e-6)
