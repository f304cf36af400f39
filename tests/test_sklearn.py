"""aerec.sklearn: scikit-learn's estimator checks, a Pipeline with a ColumnTransformer, grid search and
cross-validation on real tables, outlier detection on real data, bad input."""
from __future__ import annotations

import subprocess
import sys
from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.utils.estimator_checks import estimator_checks_generator

from aerec.exceptions import DataValidationError, InvalidParameterError
from aerec.sklearn import AutoencoderImputer, AutoencoderOutlierDetector

# --- scikit-learn's estimator checks ------------------------------------------------------------------
#: small enough that one fit takes a fraction of a second
CHECK_SETTINGS = {"epochs": 3, "hidden_dim": 8, "validation_fraction": 0.0}

#: checks not run, with the reason (every other check passes; none is expected to fail)
SKIPPED_CHECKS = {
    "check_array_api_input": "the array API checks need SCIPY_ARRAY_API=1 set before SciPy is imported; the "
                             "estimators read any input into NumPy / pandas for the Keras network anyway",
}


def _check_id(estimator, check) -> str:
    function = check.func if isinstance(check, partial) else check
    keywords = check.keywords if isinstance(check, partial) else {}
    return "-".join([type(estimator).__name__, function.__name__, *(f"{k}={v}" for k, v in keywords.items())])


def _checks(estimators):
    """scikit-learn's checks of each estimator. Its API checks (``legacy=False``: cloning, parameters, tags,
    fit returning self, n_features_in_, unfitted errors) run by default; the rest (dtypes, object and
    read-only arrays, pickling, idempotent fits, subset and order invariance, outlier shares on 300 rows...)
    fit the network about 70 more times, about a minute on two cores, so they are marked slow (``pytest -m slow``)."""
    for estimator in estimators:
        api = {_check_id(e, c) for e, c in estimator_checks_generator(estimator, legacy=False)}
        for e, check in estimator_checks_generator(estimator, legacy=True):
            check_id = _check_id(e, check)
            name = (check.func if isinstance(check, partial) else check).__name__
            marks = [pytest.mark.skip(reason=SKIPPED_CHECKS[name])] if name in SKIPPED_CHECKS else []
            if check_id not in api:
                marks.append(pytest.mark.slow)
            yield pytest.param(e, check, marks=marks, id=check_id)


@pytest.fixture
def eager_keras():
    """Keras's train and predict steps run eagerly: tracing them into a graph is most of a tiny fit's time (a
    second of two), and the tests using this are about the estimators' API (the checks, cloning in a grid search),
    not TensorFlow's graphs; the other tests train in graph mode, as users do."""
    import tensorflow as tf

    before = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(before)


@pytest.mark.parametrize("estimator, check", list(_checks([AutoencoderImputer(**CHECK_SETTINGS),
                                                           AutoencoderOutlierDetector(**CHECK_SETTINGS)])))
def test_scikit_learn_estimator_checks(estimator, check, eager_keras):
    check(estimator)


# --- real tables -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes():
    """scikit-learn's diabetes table (442 x 10, real data) plus a categorical column derived from bmi,
    with 20% of the cells hidden, and the target."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    frame = data.data.copy()
    frame["bmi_band"] = pd.cut(frame["bmi"], 3, labels=["low", "mid", "high"])
    holey = frame.mask(np.random.default_rng(0).random(frame.shape) < 0.2)
    return holey, data.target


def _regression(imputer, numeric):
    """Numeric columns through ``imputer``, the categorical one through its most frequent value and one-hot,
    then Ridge."""
    columns = ColumnTransformer([
        ("numeric", imputer, numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         ["bmi_band"]),
    ])
    return make_pipeline(columns, Ridge(alpha=0.1))


def test_imputer_in_a_column_transformer_pipeline_cross_validates(diabetes):
    holey, target = diabetes
    numeric = [c for c in holey.columns if c != "bmi_band"]
    imputer = AutoencoderImputer(hidden_dim=16, epochs=20, validation_fraction=0.0, seed=0)
    scores = cross_val_score(_regression(imputer, numeric), holey, target, cv=2)
    by_means = cross_val_score(_regression(SimpleImputer(), numeric), holey, target, cv=2)
    assert scores.mean() > 0.4  # R^2 of Ridge on the full table is about 0.5
    assert scores.mean() >= by_means.mean() - 0.02

    model = _regression(imputer, numeric).fit(holey, target)
    features = model[0].transform(holey)
    assert features.shape == (len(holey), len(numeric) + 3) and not np.isnan(features).any()
    names = list(model[0].get_feature_names_out())
    assert names[:len(numeric)] == [f"numeric__{c}" for c in numeric]
    assert names[len(numeric):] == [f"categorical__bmi_band_{band}" for band in ("high", "low", "mid")]
    fitted = model[0].named_transformers_["numeric"]
    assert list(fitted.feature_names_in_) == numeric and fitted.model_.kind == "denoising"


def test_grid_search_over_kind_and_code_dim(diabetes, eager_keras):
    holey, target = diabetes
    numeric = [c for c in holey.columns if c != "bmi_band"]
    imputer = AutoencoderImputer(hidden_dim=8, epochs=5, validation_fraction=0.0, seed=0)
    pipeline = make_pipeline(imputer, Ridge(alpha=0.1))
    grid = {"autoencoderimputer__kind": ["denoising", "undercomplete"], "autoencoderimputer__code_dim": [2, 4]}
    search = GridSearchCV(pipeline, grid, cv=2).fit(holey[numeric].iloc[:150], target.iloc[:150])
    assert len(search.cv_results_["params"]) == 4 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_[0]
    assert best.kind == search.best_params_["autoencoderimputer__kind"] == best.model_.kind
    assert best.model_.network_.code_dim == search.best_params_["autoencoderimputer__code_dim"]
    assert not hasattr(pipeline[0], "model_")  # the grid trained clones


def test_outlier_detector_tells_malignant_from_benign_tumours():
    """Trained on benign tumours only; held-out malignant ones score lower, and contamination=0.1
    flags a tenth of the training rows."""
    from sklearn.datasets import load_breast_cancer

    cancer = load_breast_cancer(as_frame=True)
    X, benign = cancer.data, cancer.target.to_numpy() == 1
    train = np.random.default_rng(0).random(len(X)) < 0.6
    detector = AutoencoderOutlierDetector(contamination=0.1, code_dim=4, hidden_dim=32, epochs=10, seed=0)
    detector.fit(X[train & benign])
    held_out, is_benign = X[~train], benign[~train]
    assert roc_auc_score(is_benign, detector.score_samples(held_out)) > 0.85
    labels = detector.predict(held_out)
    assert set(np.unique(labels)) == {-1, 1}
    assert roc_auc_score(is_benign, labels) > 0.75
    assert np.mean(labels[~is_benign] == -1) > 3 * np.mean(labels[is_benign] == -1)

    training_labels = detector.predict(X[train & benign])
    assert abs(np.mean(training_labels == -1) - 0.1) < 0.01
    np.testing.assert_allclose(detector.score_samples(held_out), -detector.model_.anomaly_score(held_out).to_numpy())
    scores = detector.score_samples(held_out)
    np.testing.assert_allclose(detector.decision_function(held_out), scores - detector.offset_)


# --- tables in, tables out ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    """40 rows of float, nullable integer, boolean, string and category columns, with holes, and a string index."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "x": rng.normal(size=40),
        "count": pd.array(rng.integers(0, 9, size=40), dtype="Int64"),
        "flag": pd.array(rng.random(40) < 0.5, dtype="boolean"),
        "colour": pd.array(rng.choice(["red", "green", "blue"], size=40), dtype="str"),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], size=40)),
    }, index=[f"r{j}" for j in range(40)])
    return frame.mask(rng.random(frame.shape) < 0.2)


@pytest.fixture(scope="module")
def mixed_imputer(mixed):
    return AutoencoderImputer(hidden_dim=8, epochs=5, validation_fraction=0.0, seed=0).fit(mixed)


def test_a_dataframe_comes_back_filled_with_its_index_and_dtypes(mixed_imputer, mixed):
    filled = mixed_imputer.transform(mixed)
    assert isinstance(filled, pd.DataFrame) and filled.index.equals(mixed.index)
    assert filled.dtypes.equals(mixed.dtypes) and not filled.isna().any().any()
    observed = mixed.notna()
    for column in mixed.columns:
        assert filled.loc[observed[column], column].equals(mixed.loc[observed[column], column])
    assert set(filled["colour"]) <= {"red", "green", "blue"}
    assert mixed_imputer.n_features_in_ == 5 and list(mixed_imputer.feature_names_in_) == list(mixed.columns)
    assert list(mixed_imputer.get_feature_names_out()) == list(mixed.columns)


def test_columns_must_come_in_the_fitted_order_with_the_fitted_names(mixed_imputer, mixed):
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        mixed_imputer.transform(mixed[mixed.columns[::-1]])
    with pytest.raises(ValueError, match=r"seen at fit time, yet now missing:\n- size"):
        mixed_imputer.transform(mixed.drop(columns="size"))
    with pytest.warns(UserWarning, match="does not have valid feature names"), \
            pytest.raises(ValueError, match="has 4 features, but AutoencoderImputer is expecting 5"):
        mixed_imputer.transform(np.zeros((3, 4)))


def test_an_array_comes_back_as_float64_or_as_pandas_when_asked(diabetes):
    values = diabetes[0].drop(columns="bmi_band").iloc[:60].to_numpy()
    imputer = AutoencoderImputer(hidden_dim=8, epochs=5, validation_fraction=0.0, seed=0)
    filled = imputer.fit_transform(values)
    assert filled.dtype == np.float64 and filled.shape == values.shape and not np.isnan(filled).any()
    observed = ~np.isnan(values)
    np.testing.assert_array_equal(filled[observed], values[observed])
    assert not hasattr(imputer, "feature_names_in_")
    nothing_observed = imputer.transform(np.full((1, values.shape[1]), np.nan))  # a typical row, from nothing
    assert np.isfinite(nothing_observed).all()
    frame = imputer.set_output(transform="pandas").transform(values)
    assert list(frame.columns) == [f"x{j}" for j in range(values.shape[1])]
    np.testing.assert_array_equal(frame.to_numpy(), filled)


def test_the_detector_reads_a_table_of_mixed_columns_and_auto_flags_a_tenth(mixed):
    detector = AutoencoderOutlierDetector(hidden_dim=8, epochs=5, validation_fraction=0.0, seed=0)
    labels = detector.fit_predict(mixed)
    assert labels.dtype.kind == "i" and np.sum(labels == -1) == 4  # "auto": the 90th percentile of 40 rows' errors
    np.testing.assert_array_equal(detector.predict(mixed), labels)
    assert list(detector.feature_names_in_) == list(mixed.columns)


# --- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AutoencoderImputer, AutoencoderOutlierDetector])
def test_infinite_values_are_refused(cls):
    values = np.random.default_rng(0).normal(size=(10, 3))
    values[2, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        cls(**CHECK_SETTINGS).fit(values)
    with pytest.raises(DataValidationError, match=r"column\(s\) \['b'\] hold infinite values"):
        cls(**CHECK_SETTINGS).fit(pd.DataFrame(values, columns=["a", "b", "c"]))


@pytest.mark.parametrize("cls,parameter,value", [(AutoencoderImputer, "kind", "shallow"),
                                                 (AutoencoderOutlierDetector, "contamination", 0.6),
                                                 (AutoencoderOutlierDetector, "contamination", "high")])
def test_a_bad_hyperparameter_is_refused_naming_the_estimator(cls, parameter, value):
    with pytest.raises(InvalidParameterError, match=rf"{cls.__name__}: {parameter} must be .*; got {value!r}"):
        cls(**{parameter: value}).fit(np.zeros((4, 2)))


def test_the_detector_refuses_rows_with_nothing_observed():
    values = np.random.default_rng(0).normal(size=(12, 3))
    values[[3, 7]] = np.nan
    with pytest.raises(DataValidationError, match=r"2 row\(s\) have no observed cell .*\[3, 7\]"):
        AutoencoderOutlierDetector(**CHECK_SETTINGS).fit(values)


def test_import_aerec_does_not_import_scikit_learn():
    code = "import sys, aerec; assert 'sklearn' not in sys.modules; import aerec.sklearn; assert 'sklearn' in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
