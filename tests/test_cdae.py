import keras
import numpy as np
import pytest

from aerec.models.cdae import CollaborativeDenoisingAutoencoder
from aerec.recommend.cdae import CDAE

from contract import RecommenderContract


class TestCDAEContract(RecommenderContract):
    history_is_fold_in = False  # training users have a learned offset that fold-in users lack

    def make_model(self):
        return CDAE(code_dim=16, epochs=4, batch_size=64)

    # the index is tuned on the lists answers get (seen items excluded): CDAE's index now keeps its promise too


def test_keras_model_save_load_same_outputs(tmp_path):
    x = (np.random.default_rng(0).random((6, 20)) < 0.3).astype("float32")
    users = np.array([0, 1, 2, 3, -1, 4], dtype="int32")
    net = CollaborativeDenoisingAutoencoder(20, 5, hidden_dim=4, weight_decay=0.01, seed=3)
    net((x, users))
    net.save(tmp_path / "model.keras")
    same = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(same((x, users))), keras.ops.convert_to_numpy(net((x, users))))
    assert same.get_config() == net.get_config()
    config = net.get_config()
    assert {k: config[k] for k in ("n_items", "n_users", "hidden_dim", "dropout", "weight_decay", "seed")} == {
        "n_items": 20, "n_users": 5, "hidden_dim": 4, "dropout": 0.5, "weight_decay": 0.01, "seed": 3}


def test_fold_in_users_get_no_offset():
    net = CollaborativeDenoisingAutoencoder(6, 3, hidden_dim=4, seed=0)
    net.build()
    x = np.ones((2, 6), dtype="float32")
    pre = keras.ops.convert_to_numpy(net.encoder(x))
    h = keras.ops.convert_to_numpy(net.user_code(x, np.array([-1, 2], dtype="int32")))
    np.testing.assert_allclose(h[0], 1 / (1 + np.exp(-pre[0])), rtol=1e-5)
    offset = keras.ops.convert_to_numpy(net.user_offset.embeddings)[2]
    np.testing.assert_allclose(h[1], 1 / (1 + np.exp(-(pre[1] + offset))), rtol=1e-5)


def test_loss_is_logistic_over_all_items():
    x = np.array([[1, 0, 1], [0, 1, 0]], dtype="float32")
    users = np.array([0, 1], dtype="int32")
    net = CollaborativeDenoisingAutoencoder(3, 2, hidden_dim=2, dropout=0.0, seed=0)
    logits = net((x, users), training=True)
    p = 1 / (1 + np.exp(-keras.ops.convert_to_numpy(logits)))
    expected = np.mean(np.sum(-(x * np.log(p) + (1 - x) * np.log(1 - p)), axis=1))
    assert float(net.compute_loss(x=(x, users), y_pred=logits)) == pytest.approx(expected, rel=1e-4)


def test_training_users_use_their_offset(small_positives):
    model = CDAE(code_dim=16, epochs=4, batch_size=64).fit(small_positives)
    rows = model.interactions_.matrix[:3]
    assert not np.allclose(model._user_vectors(rows, np.arange(3)), model._user_vectors(rows, None))


def test_bad_code_dim(small_positives):
    with pytest.raises(ValueError, match=r"code_dim must be an integer >= 1; got 0"):
        CDAE(code_dim=0).fit(small_positives)
