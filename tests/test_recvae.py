import keras
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

import aerec
from aerec.models.recvae import RecVAENetwork
from aerec.recommend.recvae import RecVAE

from contract import RecommenderContract

SMALL = dict(hidden_dim=32, code_dim=8, epochs=3, batch_size=64)


def _np(t):
    return keras.ops.convert_to_numpy(t)


class TestRecVAEContract(RecommenderContract):
    def make_model(self):
        return RecVAE(**SMALL)


def _rows(n_users=6, n_items=20, seed=0):
    return (np.random.default_rng(seed).random((n_users, n_items)) < 0.3).astype("float32")


# --- the Keras model ----------------------------------------------------------------------
def test_keras_model_save_load_same_outputs(tmp_path):
    x = _rows()
    net = RecVAENetwork(20, hidden_dim=16, latent_dim=4, gamma=0.01, mixture_weights=(0.2, 0.7, 0.1),
                        encoder_epochs=2, seed=3)
    net.build((None, 20))
    net.save(tmp_path / "model.keras")
    same = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(same) is RecVAENetwork
    np.testing.assert_array_equal(_np(same(x)), _np(net(x)))
    np.testing.assert_array_equal(_np(same.user_code(x)), _np(net.user_code(x)))
    assert same.get_config() == net.get_config()
    assert same.mixture_weights == (0.2, 0.7, 0.1) and same.encoder_epochs == 2


def test_logits_are_the_code_mean_times_the_linear_decoder():
    x = _rows()
    net = RecVAENetwork(20, hidden_dim=16, latent_dim=4, seed=0)
    net.build((None, 20))
    mu = _np(net.user_code(x))
    kernel, bias = _np(net.output_layer.kernel), _np(net.output_layer.bias)
    np.testing.assert_allclose(_np(net(x)), mu @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_encoder_is_densely_connected_with_layer_norm():
    x = _rows()
    enc = RecVAENetwork(20, hidden_dim=16, latent_dim=4, seed=0).encoder
    enc.build((None, 20))
    h = x / np.linalg.norm(x, axis=1, keepdims=True)
    outputs = []
    for dense, norm in zip(enc.hidden, enc.norms):
        pre = h @ _np(dense.kernel) + _np(dense.bias) + sum(outputs)
        act = pre / (1 + np.exp(-pre))
        mu, var = act.mean(axis=1, keepdims=True), act.var(axis=1, keepdims=True)
        h = (act - mu) / np.sqrt(var + 0.1) * _np(norm.gamma) + _np(norm.beta)
        outputs.append(h)
    mean, log_var = enc(x)
    np.testing.assert_allclose(_np(mean), h @ _np(enc.mean_layer.kernel) + _np(enc.mean_layer.bias), atol=1e-4)
    np.testing.assert_allclose(_np(log_var), h @ _np(enc.log_var_layer.kernel) + _np(enc.log_var_layer.bias),
                               atol=1e-4)


def test_elbo_terms_are_multinomial_nll_and_user_weighted_kl_against_the_composite_prior():
    x = _rows(n_users=5)
    x[0, :] = 0
    x[0, :2] = 1  # users with 2 and ~6 interactions: their KL weights differ
    net = RecVAENetwork(20, hidden_dim=16, latent_dim=4, gamma=0.03, mixture_weights=(0.2, 0.5, 0.3), seed=1)
    net.build((None, 20))
    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 4)).astype("float32") * 0.3
    z = (mean + rng.normal(size=(5, 4)) * np.exp(0.5 * log_var)).astype("float32")
    nll, kl = net.elbo_terms(x, mean, log_var, z)

    def log_normal(v, m, lv):
        return -0.5 * (lv + np.log(2 * np.pi) + (v - m) ** 2 / np.exp(lv))

    logits = z @ _np(net.output_layer.kernel) + _np(net.output_layer.bias)
    assert float(nll) == pytest.approx(-np.mean(np.sum(log_softmax(logits, axis=1) * x, axis=1)), rel=1e-5)
    old_mean, old_log_var = (_np(t) for t in net.prior_encoder(x))
    prior = logsumexp(np.stack([np.log(0.2) + log_normal(z, 0, 0), np.log(0.5) + log_normal(z, old_mean, old_log_var),
                                np.log(0.3) + log_normal(z, 0, 10)], axis=-1), axis=-1)
    per_user = np.sum(log_normal(z, mean, log_var) - prior, axis=1) * 0.03 * x.sum(axis=1)
    assert float(kl) == pytest.approx(np.mean(per_user), rel=1e-4)


def test_update_prior_copies_the_encoder():
    net = RecVAENetwork(20, hidden_dim=16, latent_dim=4, seed=0)
    net.build((None, 20))
    x = _rows()
    for w in net.encoder.weights:
        w.assign(w + 0.1)
    assert not np.allclose(_np(net.prior_encoder(x)[0]), _np(net.encoder(x)[0]))
    net.update_prior()
    np.testing.assert_array_equal(_np(net.prior_encoder(x)[0]), _np(net.encoder(x)[0]))
    assert not net.prior_encoder.trainable_weights  # the prior is never trained


def test_updates_alternate_encoder_passes_then_decoder_passes():
    x = _rows(n_users=8)
    net = RecVAENetwork(20, hidden_dim=16, latent_dim=4, encoder_epochs=2, decoder_epochs=1, seed=0)
    net.build((None, 20))
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01))
    assert net.cycle_steps(2) == 6  # (2 + 1) passes of 2 batches
    net.build_optimizers()

    def snapshot():
        return [_np(w).copy() for w in net.encoder.trainable_weights], [_np(w).copy() for w in net.output_layer.weights]

    changed = []
    for _ in range(7):
        enc_before, dec_before = snapshot()
        net.train_step(keras.ops.convert_to_tensor(x))
        enc_after, dec_after = snapshot()
        enc_moved = any(not np.array_equal(a, b) for a, b in zip(enc_before, enc_after))
        dec_moved = any(not np.array_equal(a, b) for a, b in zip(dec_before, dec_after))
        changed.append("E" if enc_moved and not dec_moved else "D" if dec_moved and not enc_moved else "?")
    assert "".join(changed) == "EEEEDDE"


# --- the recommender ------------------------------------------------------------------------
def test_history_has_both_terms_and_validation(small_positives):
    held = small_positives.groupby("user").cumcount() % 5 == 4
    model = RecVAE(**SMALL).fit(small_positives[~held], valid=small_positives[held])
    assert set(model.history_) >= {"loss", "nll", "kl", "val_ndcg@100", "train_seconds", "best_epoch"}
    assert len(model.history_["val_ndcg@100"]) == 3
    # each epoch is (3 + 1) passes over 200 users in batches of 64
    assert model.network_.batches_per_pass.numpy() == 4
    assert model.best_epoch_ == int(np.argmax(model.history_["val_ndcg@100"]))


def test_scores_are_the_networks_logits(small_positives):
    model = RecVAE(**SMALL).fit(small_positives)
    rows = model.interactions_.matrix[:7]
    np.testing.assert_allclose(model._scores(rows, np.arange(7)), _np(model.network_(rows.toarray())),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("params,message", [
    ({"gamma": -1}, r"gamma must be a number >= 0; got -1"),
    ({"encoder_epochs": 0}, r"encoder_epochs must be an integer >= 1; got 0"),
    ({"decoder_epochs": 1.5}, r"decoder_epochs must be an integer >= 1; got 1.5"),
    ({"hidden_dim": 0}, r"hidden_dim must be an integer >= 1; got 0"),
    ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\); got -0.1"),
])
def test_bad_hyperparameters(small_positives, params, message):
    with pytest.raises(ValueError, match=message):
        RecVAE(**params).fit(small_positives)


def test_learns_something_on_a1_seed0():
    split = aerec.evaluate.load_protocol_a("weak", 0)
    model = RecVAE(epochs=20, seed=0).fit(split["train"])  # measured 0.379
    ndcg = aerec.evaluate.evaluate_weak(model, split["test"], exclude=split["valid"], metrics=["ndcg@100"]).mean()
    assert ndcg["ndcg@100"] > 0.36  # popularity scores ~0.28


@pytest.mark.slow
def test_defaults_on_a1_seed0():
    # protocol A1, seed 0, defaults, early stopping on validation: measured 0.4512 (MultDAE 0.4508, EASE 0.4305)
    split = aerec.evaluate.load_protocol_a("weak", 0)
    model = RecVAE(seed=0).fit(split["train"], valid=split["valid"])
    ndcg = aerec.evaluate.evaluate_weak(model, split["test"], exclude=split["valid"], metrics=["ndcg@100"]).mean()
    assert ndcg["ndcg@100"] > 0.445
