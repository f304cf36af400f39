"""The structure the other tests rely on: thin shells over the public API, one parameter check, one
set of names, one home per estimator, and bundles a fresh process can load without a hand-kept list."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import aerec
from aerec.base import estimator_classes
from aerec.exceptions import InvalidParameterError

PACKAGE = Path(aerec.__file__).parent


def _private_uses(path: Path) -> list[str]:
    """Every ``x._name`` (x not self/cls) and every ``from ... import _name`` in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
        if isinstance(node, ast.ImportFrom):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


@pytest.mark.parametrize("shell", ["server.py", "cli.py"])
def test_server_and_cli_use_only_public_api(shell):
    assert _private_uses(PACKAGE / shell) == []


def test_the_private_use_check_can_fail(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from aerec.bundle import _versions\nmodel._top_items(1)\nself._ok()\n")
    assert _private_uses(sample) == ["sample.py:1 import _versions", "sample.py:2 ._top_items"]


# --- one declarative check, one naming scheme --------------------------------------------------------
#: parameters checked elsewhere, with the reason
CHECKED_ELSEWHERE = {
    ("ContentModel", "text"), ("ContentModel", "categorical"), ("ContentModel", "multilabel"),
    ("ContentModel", "numeric"), ("ContentModel", "vector"), ("ContentModel", "separator"),  # by aerec.features
    ("ContentModel", "image"), ("ContentModel", "image_search"), ("ContentModel", "image_root"),  # in fit
    ("EmbeddingIndex", "kind"),  # any FAISS factory string: checked by FAISS itself, in _check_param_relations
    ("ImageSearch", "index_kind"),  # passed to EmbeddingIndex
}


@pytest.mark.parametrize("name,cls", sorted(estimator_classes().items()))
def test_every_parameter_is_declared(name, cls):
    params = cls._param_names()
    undeclared = [p for p in params if p not in cls._parameter_constraints and (name, p) not in CHECKED_ELSEWHERE]
    assert undeclared == []
    assert set(cls._parameter_constraints) <= set(params)  # no constraint for a parameter that does not exist


@pytest.mark.parametrize("name,cls", sorted(estimator_classes().items()))
def test_a_bad_value_is_refused_naming_the_class_and_parameter(name, cls):
    estimator = cls()
    parameter = sorted(cls._parameter_constraints)[0]
    estimator.set_params(**{parameter: object()})
    with pytest.raises(InvalidParameterError, match=rf"{name}: {parameter} must be .*; got <object"):
        estimator._validate_params()


#: one name per idea across estimators (the other names in each pair must not appear)
SYNONYMS = {"epochs": "max_epochs", "validation_fraction": "validation_split", "code_dim": "latent_dim",
            "l2": "weight_decay", "kind": "model", "hidden_dim": "hidden"}


def test_one_name_per_hyperparameter():
    used = {p for cls in estimator_classes().values() for p in cls._param_names()}
    assert used & set(SYNONYMS.values()) == set()
    assert set(SYNONYMS) <= used


# --- one home per estimator --------------------------------------------------------------------------
def test_each_estimator_lives_in_its_own_module():
    homes = {name: cls.__module__ for name, cls in estimator_classes().items()}
    assert homes["AutoRec"] == "aerec.recommend.autorec"
    assert homes["TableAutoencoder"] == "aerec.table"
    assert all(issubclass(estimator_classes()[n], aerec.KerasRecommender) for n in ("MultVAE", "MultDAE", "CDAE", "RecVAE"))
    assert not (PACKAGE / "impute.py").exists()


def test_table_kinds_are_listed_once():
    from aerec.models import table, table_kinds

    assert aerec.TableAutoencoder._parameter_constraints["kind"][0].values == table_kinds.KINDS
    assert table.KINDS is table_kinds.KINDS
    sources = "".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "table_kinds.py")
    assert '("undercomplete", "sparse"' not in sources  # no second copy of the list


def test_served_kind_is_declared_by_the_class():
    from aerec.server import served_kinds, serving_kind

    assert served_kinds() == ["image search", "rating model", "recommender"]
    assert serving_kind(aerec.EASE) == "recommender" and serving_kind(aerec.AutoRec) == "rating model"
    assert serving_kind(aerec.TableAutoencoder) is None


# --- loading in a fresh process ----------------------------------------------------------------------
FRESH_LOAD = """
import sys
import aerec
for path in sys.argv[1:]:
    model = aerec.load(path)
    print(type(model).__name__, model.recommend([1], k=3)["item"].tolist())
"""


def test_a_fresh_process_loads_every_keras_recommender(tmp_path, small_positives):
    paths, expected = [], []
    for cls in (aerec.MultDAE, aerec.CDAE, aerec.RecVAE):
        model = cls(epochs=1, batch_size=100, seed=0).fit(small_positives)
        model.save(tmp_path / cls.__name__)
        paths.append(str(tmp_path / cls.__name__))
        expected.append(f"{cls.__name__} {model.recommend([1], k=3)['item'].tolist()}")
    result = subprocess.run([sys.executable, "-c", FRESH_LOAD, *paths], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:3] == expected


# --- ids from text -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def string_id_bundle(tmp_path_factory):
    frame = pd.DataFrame({"user": ["007", "007", "7", "7", "42", "42"], "item": ["1", "2", "1", "3", "2", "3"]})
    path = tmp_path_factory.mktemp("ids") / "bundle"
    aerec.EASE(l2=1.0).fit(frame).save(path)
    return path


def test_string_ids_made_of_digits_through_the_cli(string_id_bundle):
    from aerec.cli import app

    result = CliRunner().invoke(app, ["recommend", str(string_id_bundle), "--users", "007", "--k", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split(",")[:2] == ["007", "3"]
    unknown = CliRunner().invoke(app, ["recommend", str(string_id_bundle), "--users", "8", "--k", "1"])
    assert unknown.exit_code == 1 and "1 unknown user id(s): '8'" in unknown.output


def test_string_ids_made_of_digits_over_http(string_id_bundle):
    from aerec.server import create_app

    client = TestClient(create_app(string_id_bundle))
    answer = client.post("/recommend", json={"user": "007", "k": 1})
    assert answer.status_code == 200 and answer.json()["items"][0]["item"] == "3"
    assert client.post("/recommend", json={"user": "7", "k": 1}).json()["items"][0]["item"] == "2"
    assert client.post("/similar-items", json={"item": 1, "k": 1}).status_code == 200  # 1 means "1" here


def test_coerce_ids_keeps_what_it_cannot_convert():
    from aerec.data import coerce_ids

    assert coerce_ids(["42", "x", "4.5"], pd.Index([1, 42])) == [42, "x", "4.5"]
    assert coerce_ids(["007", 7], pd.Index(["007", "7"])) == ["007", "7"]


def test_estimator_docstrings_document_every_parameter():
    missing = {}
    for name, cls in estimator_classes().items():
        doc = inspect.getdoc(cls) or ""
        absent = [p for p in cls._param_names() if p not in doc]
        if absent:
            missing[name] = absent
    assert missing == {}
