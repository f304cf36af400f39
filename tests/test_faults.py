"""Faults: saves killed at random moments never lose the bundle, and the next save leaves nothing behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import aerec

# saves the same model to one path over and over, so that a kill lands anywhere inside a save:
# writing the files, hashing them, writing meta.json, swapping the directories, removing the old one
SAVE_LOOP = """
import sys, pathlib
import numpy as np, pandas as pd
import aerec
rng = np.random.default_rng(int(sys.argv[3]))
frame = pd.DataFrame({"user": rng.integers(0, 400, 6000), "item": rng.integers(0, 1200, 6000)})
model = aerec.ItemKNN(shrink=float(sys.argv[3]) + 1.0).fit(frame).build_index()  # no TensorFlow to import: quick to start
pathlib.Path(sys.argv[2]).write_text("ready")
while True:
    model.save(sys.argv[1])
"""


def _files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_saves_killed_at_random_moments_never_lose_the_bundle(tmp_path):
    target = tmp_path / "bundle"
    first = aerec.ItemKNN(shrink=1.0).fit(pd.DataFrame({"user": [1, 1, 2], "item": [1, 2, 1]})).build_index()
    first.save(target)
    rng = np.random.default_rng(0)
    kills, seen_shrink = 20, set()
    for attempt in range(kills):
        marker = tmp_path / f"ready-{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(target), str(marker), str(attempt)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert marker.exists(), proc.stderr.read().decode()[-2000:]
        time.sleep(float(rng.uniform(0.0, 0.4)))  # somewhere inside one of the saves
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        model = aerec.load(target)  # a whole bundle, old or new, every time
        seen_shrink.add(model.get_params()["shrink"])
        assert _files(target) == sorted(["meta.json", "users.parquet", "items.parquet", "interactions.npz",
                                         "state.npz", "index/index.faiss", "index/ids.parquet"])
    assert len(seen_shrink) > 1  # the kills did land after some saves had completed
    first.save(target)  # the next save clears whatever the killed ones left beside the bundle
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("ready-")) == ["bundle"]
    assert aerec.load(target).get_params()["shrink"] == 1.0


def test_save_refuses_a_folder_that_merely_holds_a_meta_json(tmp_path, small_positives):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "meta.json").write_text("{}")
    (project / "train.py").write_text("print('hello')")
    (project / "data" / "big.csv").write_text("a,b\n1,2\n")
    mode = project.stat().st_mode
    with pytest.raises(aerec.exceptions.BundleError, match="project exists and is not an aerec bundle"):
        aerec.Popularity().fit(small_positives).save(project)
    assert _files(project) == ["data/big.csv", "meta.json", "train.py"] and project.stat().st_mode == mode


def test_save_to_the_working_directory(tmp_path, small_positives, monkeypatch):
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    model = aerec.Popularity().fit(small_positives)
    model.save(".")
    model.save(".")  # replacing the bundle that is the working directory
    assert aerec.load(folder).recommend([1], k=3).equals(model.recommend([1], k=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


def test_a_truncated_file_with_a_rewritten_checksum_is_named(tmp_path, small_positives):
    import json

    from aerec.utils import sha256_of

    aerec.EASE(l2=10.0).fit(small_positives).save(tmp_path / "b")
    state = tmp_path / "b" / "state.npz"
    state.write_bytes(state.read_bytes()[: len(state.read_bytes()) // 2])
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    meta["files"]["state.npz"] = sha256_of(state)
    (tmp_path / "b" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(aerec.exceptions.BundleError, match=r"state\.npz cannot be read"):
        aerec.load(tmp_path / "b")


def test_files_the_listing_does_not_name_are_refused(tmp_path, small_positives):
    aerec.Popularity().fit(small_positives).build_index().save(tmp_path / "b")
    (tmp_path / "b" / "index" / "extra.faiss").write_bytes(b"not listed")
    with pytest.raises(aerec.exceptions.BundleError, match=r"does not list: \['index/extra\.faiss'\]"):
        aerec.load(tmp_path / "b")
