"""TableAutoencoder: imputation, codes, anomaly scores, each kind's penalty, bad input, saving."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import DataValidationError, MissingColumnError, NotFittedError, UnknownIdsWarning
from aerec import TableAutoencoder
from aerec.models.table import TableNetwork

FAST = {"hidden_dim": 32, "epochs": 40, "patience": 40, "batch_size": 32}


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    """The wine table (178 x 13, real data), a string column and a category column, and a string index."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.data.copy()
    frame["proline"] = frame["proline"].round().astype("Int64")
    frame["colour"] = pd.cut(frame["color_intensity"], 3, labels=["pale", "medium", "deep"]).astype(str)
    frame["cultivar"] = pd.Categorical(data.target.map({0: "a", 1: "b", 2: "c"}))
    frame.index = [f"w{j}" for j in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def holey(wine) -> pd.DataFrame:
    hidden = np.random.default_rng(0).random(wine.shape) < 0.2
    return wine.mask(hidden)


@pytest.fixture(scope="module")
def models(holey) -> dict:
    """One fitted model per kind on the same table, same seed, same architecture."""
    return {kind: TableAutoencoder(kind=kind, seed=0, **FAST).fit(holey) for kind in
            ("undercomplete", "sparse", "contractive", "denoising", "variational")}


def _standardised_rmse(full, imputed, hidden, columns):
    err = ((imputed[columns] - full[columns]) / full[columns].std()).to_numpy(dtype=float)[hidden]
    return float(np.sqrt(np.mean(err ** 2)))


# --- imputation -------------------------------------------------------------------------


def test_impute_fills_only_the_holes_and_keeps_dtypes_and_index(models, holey):
    filled = models["denoising"].impute(holey)
    assert filled.index.equals(holey.index) and list(filled.columns) == list(holey.columns)
    assert filled.dtypes.equals(holey.dtypes)
    assert not filled.isna().any().any()
    observed = holey.notna()
    for column in holey.columns:
        assert filled.loc[observed[column], column].equals(holey.loc[observed[column], column])
    assert set(filled["colour"]) <= {"pale", "medium", "deep"}
    assert set(filled["cultivar"].cat.categories) == {"a", "b", "c"}
    assert holey.isna().any().any()  # the input was not changed


def test_denoising_imputes_numeric_cells_better_than_column_means(models, wine, holey):
    numeric = [c for c in wine.columns if c not in ("colour", "cultivar", "proline")]
    hidden = holey[numeric].isna().to_numpy()
    by_model = _standardised_rmse(wine, models["denoising"].impute(holey), hidden, numeric)
    by_means = _standardised_rmse(wine, holey.fillna(holey[numeric].mean()), hidden, numeric)
    assert by_model < 0.9 * by_means


def test_impute_accepts_columns_in_another_order(models, holey):
    model = models["denoising"]
    shuffled = holey[holey.columns[::-1]]
    out = model.impute(shuffled)
    assert list(out.columns) == list(shuffled.columns)
    assert out[holey.columns].equals(model.impute(holey))


# --- codes and anomaly scores -----------------------------------------------------------


def test_transform_gives_codes_with_the_tables_index(models, holey):
    codes = models["undercomplete"].transform(holey)
    assert codes.index.equals(holey.index)
    assert list(codes.columns) == [f"c{j}" for j in range(models["undercomplete"].network_.code_dim)]
    assert np.isfinite(codes.to_numpy()).all()


@pytest.mark.parametrize("kind", ["undercomplete", "denoising"])
def test_anomaly_score_ranks_corrupted_rows_above_normal_ones_for_each_scoring(models, wine, kind):
    """Plain reconstruction (undercomplete) and hidden-cell prediction (denoising, visible_weight 0.1) both flag them."""
    assert models[kind].network_.scores_hidden_cells == (kind == "denoising")
    rng = np.random.default_rng(1)
    odd = wine.iloc[:40].copy()
    numeric = [c for c in wine.columns if c not in ("colour", "cultivar", "proline")]
    for column in numeric:  # each numeric cell drawn from another row: a plausible value, an implausible row
        odd[column] = rng.permutation(wine[column].to_numpy())[:40]
    odd.index = [f"odd{j}" for j in range(40)]
    scores = models[kind].anomaly_score(pd.concat([wine, odd]))
    assert isinstance(scores, pd.Series) and scores.index.equals(pd.concat([wine, odd]).index)
    labels = np.r_[np.zeros(len(wine)), np.ones(40)]
    assert aerec.metrics.auroc(labels, scores.to_numpy()) > 0.8


def test_denoising_scores_each_cell_while_it_is_hidden(models, holey):
    """The score equals predicting each interleaved group of columns from a copy of the table where they are NaN."""
    model = models["denoising"]
    net = model.network_
    groups = int(np.ceil(1 / net.corruption))
    frame = holey.iloc[:30]
    values, mask = (np.asarray(a) for a in net.preprocess(_inputs(model, frame)))
    group = np.arange(frame.shape[1]) % groups
    total = np.zeros(len(frame))
    for g in range(groups):
        hidden = np.broadcast_to(group == g, frame.shape)
        output = net(_inputs(model, frame.mask(hidden)))  # hidden the way a user's NaN is
        total += np.asarray(net.cell_losses(values, mask * hidden, output)).sum(axis=1)
    np.testing.assert_allclose(model.anomaly_score(frame).to_numpy(), total / mask.sum(axis=1), rtol=1e-5)
    plain = np.asarray(net.cell_losses(values, mask, net(_inputs(model, frame)))).sum(axis=1) / mask.sum(axis=1)
    assert not np.allclose(plain, total / mask.sum(axis=1), rtol=0.05)


def test_anomaly_score_of_a_row_with_nothing_observed_is_nan_with_a_warning(models, holey):
    empty = holey.iloc[:2].copy()
    empty.iloc[0] = None
    with pytest.warns(aerec.exceptions.DroppedRowsWarning, match="1 row"):
        scores = models["undercomplete"].anomaly_score(empty)
    assert np.isnan(scores.iloc[0]) and np.isfinite(scores.iloc[1])


# --- each kind's penalty is applied -----------------------------------------------------


def _inputs(model, frame):
    return model._arrays(model._check_table(frame, "table"), "table")


def test_sparse_code_is_sparser_than_without_the_penalty(holey, models):
    sparse = models["sparse"]
    unpenalised = TableAutoencoder(kind="sparse", sparsity=0.0, seed=0, **FAST).fit(holey)
    active = sparse.transform(holey).to_numpy().mean()
    assert active < 0.5 * unpenalised.transform(holey).to_numpy().mean()
    assert active < 0.2  # on its way to the target of 0.05
    # and sparser than the undercomplete code in a scale-free sense (Hoyer's measure, 1 = one active unit)
    def hoyer(codes):
        codes = np.abs(codes)
        n = codes.shape[1]
        ratio = codes.sum(axis=1) / np.maximum(np.sqrt((codes ** 2).sum(axis=1)), 1e-12)
        return float(np.mean((np.sqrt(n) - ratio) / (np.sqrt(n) - 1)))
    assert hoyer(sparse.transform(holey).to_numpy()) > hoyer(models["undercomplete"].transform(holey).to_numpy())


def test_sparse_kl_term_is_in_the_training_losses(models, holey):
    net = models["sparse"].network_
    x = _inputs(models["sparse"], holey)
    net(x, training=True)
    code = np.clip(np.asarray(net.encode(x)).mean(axis=0), 1e-6, 1 - 1e-6)
    rho = net.sparsity_target
    kl = np.sum(rho * np.log(rho / code) + (1 - rho) * np.log((1 - rho) / (1 - code)))
    assert len(net.losses) == 1
    np.testing.assert_allclose(float(net.losses[0]), net.sparsity * kl, rtol=1e-4)


def _jacobian_norm_by_autodiff(net, x):
    """Each row's squared Frobenius norm of d code / d encoder input, by TensorFlow, averaged over members."""
    import tensorflow as tf

    values, mask = net.preprocess(x)
    v = tf.convert_to_tensor(net._encoder_input(values, mask))
    with tf.GradientTape() as tape:
        tape.watch(v)
        code = net._encode_input(v)[3][..., : net.code_dim]  # (rows, members, code)
    jacobian = tape.batch_jacobian(code, v)  # (rows, members, code, input)
    return tf.reduce_sum(tf.square(jacobian), axis=(2, 3)).numpy().mean(axis=1)


def test_contractive_jacobian_norm_is_exact_and_smaller(models, holey):

    contractive = models["contractive"]
    net = contractive.network_
    x = _inputs(contractive, holey.iloc[:16])
    by_autodiff = _jacobian_norm_by_autodiff(net, x)
    np.testing.assert_allclose(np.asarray(net.jacobian_norm(x)), by_autodiff, rtol=1e-4, atol=1e-6)

    def mean_norm(model):
        return float(np.mean(np.asarray(model.network_.jacobian_norm(_inputs(model, holey)))))
    assert mean_norm(contractive) < 0.5 * mean_norm(models["undercomplete"])
    net(x, training=True)
    np.testing.assert_allclose(float(net.losses[0]), net.contraction * by_autodiff.mean(), rtol=1e-4)


def _ensemble_output(net, members_output):
    """The ensemble's output from the members' (rows, members, outputs), in numpy, as the network averages them."""
    out = np.asarray(members_output, dtype=np.float64)
    p = net.n_numeric
    parts, start = [out[:, :, :p].mean(axis=1)], p
    for size in net.category_sizes:
        logits = out[:, :, start:start + size]
        probs = np.exp(logits - logits.max(axis=2, keepdims=True))
        parts.append(np.log((probs / probs.sum(axis=2, keepdims=True)).mean(axis=1)))
        start += size
    return np.concatenate(parts, axis=1)


def test_denoising_hides_input_cells_in_training_only(models, holey):
    net = models["denoising"].network_
    x = _inputs(models["denoising"], holey)
    clean = np.asarray(net(x, training=False))
    np.testing.assert_allclose(np.asarray(net(x, training=False)), clean)
    assert not np.allclose(_ensemble_output(net, net(x, training=True)), clean)
    quiet = TableNetwork.from_config({**net.get_config(), "corruption": 0.0, "dropout": 0.0})
    quiet(x)
    quiet.set_weights(net.get_weights())
    np.testing.assert_allclose(_ensemble_output(quiet, quiet(x, training=True)), np.asarray(quiet(x, training=False)),
                               rtol=1e-5, atol=1e-5)
    assert not net.losses or net.kind == "denoising"


def test_variational_kl_term_is_in_the_training_losses(models, holey):
    import tensorflow as tf

    model = models["variational"]
    net = model.network_
    x = _inputs(model, holey)
    net(x, training=True)
    values, mask = net.preprocess(x)
    out = np.asarray(net._encode_input(tf.convert_to_tensor(net._encoder_input(values, mask)))[3])
    mean, log_var = out[..., : net.code_dim], out[..., net.code_dim:]  # (rows, members, code)
    kl = np.mean(np.sum(0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var), axis=-1))
    assert len(net.losses) == 1 and kl > 0
    np.testing.assert_allclose(float(net.losses[0]), net.beta * kl, rtol=1e-4)
    # the code used by transform is the mean: deterministic
    assert model.transform(holey).equals(model.transform(holey))


def test_denoising_visible_weight_moves_the_loss_onto_the_hidden_cells(models, holey):
    """visible_weight=0: the step's loss is the loss on the cells hidden in that step, added in call."""
    net = models["denoising"].network_
    x = _inputs(models["denoising"], holey)
    values, mask = net.preprocess(x)

    def twin(**changes):
        other = TableNetwork.from_config({**net.get_config(), **changes})
        other(x)
        other.set_weights(net.get_weights())
        return other

    classic = twin(visible_weight=1.0)
    classic(x, training=True)
    assert classic.losses == []  # the classic loss: every observed cell, in compute_loss
    almost_all = twin(visible_weight=0.0, corruption=0.999)
    out = almost_all(x, training=True)
    everything = float(np.mean(np.sum(np.asarray(almost_all.cell_losses(values, mask, out)), axis=-1)))
    assert len(almost_all.losses) == 1
    np.testing.assert_allclose(float(almost_all.losses[0]), everything, rtol=0.02)
    np.testing.assert_allclose(float(almost_all.compute_loss(x, y_pred=out)), float(almost_all.losses[0]), rtol=1e-6)
    almost_none = twin(visible_weight=0.0, corruption=1e-6)
    almost_none(x, training=True)
    assert abs(float(almost_none.losses[0])) < 1e-3 * everything


def test_members_are_independent_autoencoders_averaged_in_inference(holey):
    model = TableAutoencoder(kind="undercomplete", members=3, seed=0, **{**FAST, "epochs": 3}).fit(holey)
    net = model.network_
    x = _inputs(model, holey)
    members = np.asarray(net(x, training=True))  # (rows, members, outputs); no noise in this kind
    assert members.shape[1] == 3 and not np.allclose(members[:, 0], members[:, 1])
    np.testing.assert_allclose(np.asarray(net(x)), _ensemble_output(net, members), rtol=1e-5, atol=1e-5)
    for k in range(3):  # member k alone is a one-member network with the k-th slice of every weight
        single = TableNetwork.from_config({**net.get_config(), "members": 1})
        single(x)
        for mine, theirs in zip(single.layers, net.layers):
            if hasattr(theirs, "members"):
                mine.kernel.assign(theirs.kernel[k:k + 1])
                mine.bias.assign(theirs.bias[k:k + 1])
        np.testing.assert_allclose(np.asarray(single(x)), _ensemble_output(single, members[:, k:k + 1]),
                                   rtol=1e-5, atol=1e-5)
    assert model.transform(holey).shape == (len(holey), net.code_dim)
    assert not model.impute(holey).isna().any().any()


def test_linear_skip_adds_a_linear_map_of_the_visible_cells_to_the_output(holey):
    model = TableAutoencoder(kind="denoising", linear_skip=True, members=2, seed=0, **{**FAST, "epochs": 3}).fit(holey)
    net = model.network_
    x = _inputs(model, holey)
    values, mask = net.preprocess(x)
    v = np.asarray(net._encoder_input(values, mask))
    without = TableNetwork.from_config({**net.get_config(), "linear_skip": False})
    without(x)
    for mine, theirs in zip(without.layers, [layer for layer in net.layers if layer.name != "skip"]):
        mine.set_weights(theirs.get_weights())
    members = np.asarray(net.decode(net._encode_input(v)[3]))  # the autoencoders alone, (rows, members, outputs)
    skip = np.einsum("bi,kio->bko", v, np.asarray(net.skip_layer.kernel)) + np.asarray(net.skip_layer.bias)
    np.testing.assert_allclose(_ensemble_output(net, members + skip), np.asarray(net(x)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_ensemble_output(net, members), np.asarray(without(x)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("validation", ["cells", "rows"])
def test_early_stopping_watches_held_out_cells_and_keeps_the_best_epoch(holey, validation):
    model = TableAutoencoder(validation=validation, seed=0, **{**FAST, "epochs": 300, "patience": 5}).fit(holey)
    errors = np.asarray(model.history_["val_reconstruction"])
    assert np.isfinite(errors).all() and (errors > 0).all()
    assert 15 <= len(errors) < 300  # judged from epoch 10, stopped 5 epochs after its best
    best = 10 + int(np.argmin(errors[10:]))
    assert len(errors) == best + 1 + 5


def test_a_table_too_small_to_hold_out_cells_trains_without_early_stopping():
    tiny = pd.DataFrame({"x": [1.0, 2.0, np.nan], "y": [np.nan, 0.5, 0.25]})
    with pytest.warns(aerec.exceptions.AerecWarning, match="too few observed cells"):
        model = TableAutoencoder(hidden_dim=4, epochs=12, patience=2, seed=0).fit(tiny)
    assert len(model.history_["loss"]) == 12 and "val_reconstruction" not in model.history_


def test_no_penalty_for_the_undercomplete_kind(models, holey):
    net = models["undercomplete"].network_
    net(_inputs(models["undercomplete"], holey), training=True)
    assert net.losses == []


# --- saving and determinism -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["variational", "denoising"])
def test_save_load_round_trip_gives_the_same_outputs(models, holey, tmp_path, kind):
    model = models[kind]
    model.save(tmp_path / "bundle")
    same = aerec.load(tmp_path / "bundle")
    assert isinstance(same, TableAutoencoder) and same.get_params() == model.get_params()
    assert same.impute(holey).equals(model.impute(holey))
    pd.testing.assert_frame_equal(same.transform(holey), model.transform(holey))
    pd.testing.assert_series_equal(same.anomaly_score(holey), model.anomaly_score(holey))
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["meta.json", "schema.json",
                                                                       "table_autoencoder.keras"]


def test_a_bundle_from_before_the_ensemble_network_is_refused_with_a_clear_error(models, tmp_path):
    import json

    models["undercomplete"].save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    meta["format_version"] = 1  # what aerec 0.1 wrote, with the single-network weights
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(aerec.exceptions.BundleError, match="refit the model"):
        aerec.load(tmp_path / "old")


def test_network_config_round_trips(models):
    net = models["sparse"].network_
    config = net.get_config()
    assert config["kind"] == "sparse" and config["hidden"] == [32] and config["sparsity"] == 1.0
    assert config["vocabularies"] == [["deep", "medium", "pale"], ["a", "b", "c"]]
    assert TableNetwork.from_config(config).get_config() == config


def test_same_seed_same_model(holey):
    params = {**FAST, "epochs": 5}
    first = TableAutoencoder(kind="variational", seed=3, **params).fit(holey).transform(holey)
    again = TableAutoencoder(kind="variational", seed=3, **params).fit(holey).transform(holey)
    other = TableAutoencoder(kind="variational", seed=4, **params).fit(holey).transform(holey)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first.to_numpy(), other.to_numpy())


# --- bad input: each error names the column at fault -------------------------------------


@pytest.mark.parametrize("value, dtype", [(pd.Timestamp("2024-01-01"), "datetime64"), (pd.Timedelta("1h"), "timedelta64"),
                                          (1 + 2j, "complex128"), (pd.Period("2024-01", "M"), "period")])
def test_unsupported_dtype_names_the_column(holey, value, dtype):
    frame = holey.assign(when=value)
    with pytest.raises(DataValidationError, match=rf"column 'when' has dtype {dtype}.*does not support"):
        TableAutoencoder(**FAST).fit(frame)


def test_object_column_of_non_strings_names_the_column(holey):
    frame = holey.assign(mixed=[("a", 1)] * len(holey))
    with pytest.raises(DataValidationError, match=r"column 'mixed' holds values that are not strings"):
        TableAutoencoder(**FAST).fit(frame)


def test_entirely_missing_column_names_the_column(holey):
    frame = holey.assign(empty=np.nan)
    with pytest.raises(DataValidationError, match=r"column 'empty' is entirely missing"):
        TableAutoencoder(**FAST).fit(frame)


def test_missing_column_at_impute_names_it(models, holey):
    with pytest.raises(MissingColumnError, match=r"no column\(s\) \['alcohol'\]"):
        models["denoising"].impute(holey.drop(columns="alcohol"))


def test_extra_column_at_impute_names_it(models, holey):
    with pytest.raises(DataValidationError, match=r"column\(s\) \['surprise'\] that the model was not fitted with"):
        models["denoising"].transform(holey.assign(surprise=1.0))


def test_column_of_another_kind_at_impute_names_it(models, holey):
    with pytest.raises(DataValidationError, match=r"column 'alcohol' is categorical .* but was numeric"):
        models["denoising"].anomaly_score(holey.assign(alcohol=holey["alcohol"].astype(str)))


def test_unseen_categories_are_read_as_missing_with_a_warning(models, holey):
    frame = holey.copy()
    frame["colour"] = frame["colour"].astype(object)
    frame.iloc[:3, frame.columns.get_loc("colour")] = "ultraviolet"
    with pytest.warns(UnknownIdsWarning, match=r"'colour': 3"):
        out = models["denoising"].impute(frame)
    assert (out["colour"].iloc[:3] == "ultraviolet").all()  # not a hole: kept as given


def test_bad_parameters_are_refused(holey):
    with pytest.raises(ValueError, match="kind must be one of"):
        TableAutoencoder(kind="overcomplete").fit(holey)
    with pytest.raises(ValueError, match=r"corruption must be a number in \[0, 1\)"):
        TableAutoencoder(corruption=1.5).fit(holey)
    with pytest.raises(ValueError, match="validation must be one of 'cells', 'rows'"):
        TableAutoencoder(validation="columns").fit(holey)
    with pytest.raises(ValueError, match="members must be an integer >= 1"):
        TableAutoencoder(members=0).fit(holey)
    with pytest.raises(ValueError, match="linear_skip is for the denoising kind"):
        TableAutoencoder(kind="undercomplete", linear_skip=True).fit(holey)


def test_standardize_false_uses_the_values_as_given(holey):
    model = TableAutoencoder(standardize=False, seed=0, **{**FAST, "epochs": 2}).fit(holey)
    config = model.network_.get_config()
    assert set(config["numeric_mean"]) == {0.0} and set(config["numeric_variance"]) == {1.0}


def test_not_fitted(holey):
    with pytest.raises(NotFittedError):
        TableAutoencoder().impute(holey)


def test_no_warnings_on_clean_use(models, holey):
    with warnings.catch_warnings():
        warnings.simplefilter("error", aerec.exceptions.AerecWarning)
        models["denoising"].impute(holey)
