import json

import numpy as np
import pandas as pd
import pytest

import aerec
from aerec.exceptions import BundleError


def snapshot(path):
    """Every file of a bundle, by its path inside it, with its bytes."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(small_positives):
    return aerec.EASE(l2=30.0).fit(small_positives).build_index("flat")  # a bundle with its index part


def test_bundle_layout_and_meta(tmp_path, small_positives):
    model = aerec.EASE(l2=30.0).fit(small_positives)
    model.save(tmp_path / "a")  # the exact index is built on first use: not saved before (B is not stored twice)
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert set(meta["files"]) == {"users.parquet", "items.parquet", "interactions.npz", "state.npz"}
    assert meta["index"] is None
    assert aerec.load(tmp_path / "a").recommend([small_positives["user"].iloc[0]], k=3, via="index").shape == (3, 4)
    model.build_index("flat").save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["class"] == "EASE" and meta["params"]["l2"] == 30.0
    assert set(meta["files"]) == {"users.parquet", "items.parquet", "interactions.npz", "state.npz",
                                  "index/index.faiss", "index/ids.parquet"}
    assert meta["index"]["class"] == "EmbeddingIndex" and meta["index"]["dir"] == "index"
    assert meta["index"]["index"]["factory"] == "Flat"
    assert {"numpy", "pandas"} <= set(meta["versions"])
    with np.load(tmp_path / "b" / "state.npz", allow_pickle=False) as z:  # no pickled objects inside
        assert z["B"].shape == (len(model.items_),) * 2


def test_failed_save_keeps_the_old_bundle(tmp_path, model, monkeypatch):
    target = tmp_path / "b"
    model.save(target)
    before = snapshot(target)
    broken = aerec.EASE(l2=1.0).fit(pd.DataFrame({"user": [1, 2], "item": [1, 2]}))
    monkeypatch.setattr(broken, "_get_state", lambda: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        broken.save(target)
    assert snapshot(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary directory left behind
    assert aerec.load(target).get_params()["l2"] == 30.0


def test_overwrite_replaces_a_bundle(tmp_path, model, small_positives):
    model.save(tmp_path / "b")
    aerec.Popularity().fit(small_positives).save(tmp_path / "b")
    assert type(aerec.load(tmp_path / "b")) is aerec.Popularity
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


def test_refuses_to_overwrite_something_else(tmp_path, model):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(BundleError, match="notes exists and is not an aerec bundle"):
        model.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_tampered_truncated_and_missing_files_are_refused(tmp_path, model):
    model.save(tmp_path / "b")
    state = tmp_path / "b" / "state.npz"
    state.write_bytes(state.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"state\.npz does not match the checksum"):
        aerec.load(tmp_path / "b")
    state.unlink()
    with pytest.raises(BundleError, match=r"state\.npz is missing"):
        aerec.load(tmp_path / "b")


def test_not_a_bundle_and_unknown_class(tmp_path, model):
    with pytest.raises(BundleError, match="has no meta.json"):
        aerec.load(tmp_path)
    model.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    meta["class"] = "os.system"
    (tmp_path / "b" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="no aerec estimator is called 'os.system'"):
        aerec.load(tmp_path / "b")


KILL_SCRIPT = """
import sys, time, pathlib
import pandas as pd
import aerec
model = aerec.EASE(l2=5.0).fit(pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3]}))
original = model._get_state
def slow_state():
    pathlib.Path(sys.argv[2]).write_text("saving")   # tell the parent we are midway
    time.sleep(60)
    return original()
model._get_state = slow_state
model.save(sys.argv[1])
"""


def test_a_save_killed_midway_leaves_the_old_bundle(tmp_path, model):
    import os
    import signal
    import subprocess
    import sys
    import time

    target, marker = tmp_path / "b", tmp_path / "marker"
    model.save(target)
    before = snapshot(target)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(target), str(marker)], env=os.environ.copy())
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the saving process never got midway"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(target) == before
    assert aerec.load(target).get_params()["l2"] == 30.0
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".b.saving-")]
    assert len(leftovers) == 1  # the killed save's partial directory, never the bundle itself
    model.save(target)  # the next save clears what the dead process left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "marker"]


def test_other_library_versions_warn(tmp_path, model):
    from aerec.exceptions import BundleVersionWarning

    model.save(tmp_path / "b")
    meta_path = tmp_path / "b" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"]["numpy"] = "1.0.0"
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(BundleVersionWarning, match=r"numpy 1\.0\.0 -> "):
        aerec.load(tmp_path / "b")


def test_tuples_in_parameters_come_back_as_tuples(tmp_path):
    ratings = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2], "rating": [5, 3, 4, 2, 1]})
    model = aerec.AutoRec(hidden_dim=(4, 3), epochs=2, validation_fraction=0.0, rating_range=(1, 5)).fit(ratings)
    model.save(tmp_path / "b")
    same = aerec.load(tmp_path / "b")
    assert same.get_params() == model.get_params()
    assert same.hidden_dim == (4, 3) and same.rating_range == (1, 5)


def test_parts_are_read_only_from_inside_the_bundle(tmp_path, model):
    model.save(tmp_path / "b")
    meta_path = tmp_path / "b" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["index"]["dir"] = "../elsewhere"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="outside the bundle"):
        aerec.load(tmp_path / "b")


def test_a_bundle_of_the_first_format_is_refused_with_a_way_out(tmp_path, model):
    model.save(tmp_path / "b")
    meta_path = tmp_path / "b" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="refit the model and save it again"):
        aerec.load(tmp_path / "b")
