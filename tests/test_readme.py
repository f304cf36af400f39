"""Every Python block of the README runs as written, in order, in one namespace (as a reader would paste them)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_code_to_run():
    assert len(python_blocks()) >= 3


def test_every_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write my-bundle/ where they run
    namespace: dict = {}
    for n, block in enumerate(python_blocks(), 1):
        try:
            exec(compile(block, f"README.md block {n}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README block {n} fails: {type(exc).__name__}: {exc}\n{block}")
    assert (tmp_path / "my-bundle" / "meta.json").is_file()
