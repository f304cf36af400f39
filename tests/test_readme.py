"""Every Python block of the README, and of each page of the documentation site, runs as written, in order, in
one namespace per file (as a reader would paste them). Blocks fenced as ``py`` rather than ``python`` are shown
and not run (they start a cluster or a server); they say so."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))


def python_blocks(path: Path = README) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def run_blocks(path: Path) -> None:
    namespace: dict = {}
    for n, block in enumerate(python_blocks(path), 1):
        try:
            exec(compile(block, f"{path.relative_to(ROOT)} block {n}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{path.relative_to(ROOT)} block {n} fails: {type(exc).__name__}: {exc}\n{block}")


def test_the_readme_has_code_to_run():
    assert len(python_blocks()) >= 3


def test_every_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write my-bundle/ where they run
    run_blocks(README)
    assert (tmp_path / "my-bundle" / "meta.json").is_file()


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_every_python_block_of_the_docs_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_blocks(page)


def test_every_guide_page_has_code_to_run():
    # the Ray page's blocks start a cluster: shown, not run (tests/test_distributed.py runs the same calls)
    guide = [p for p in PAGES if p.parent.name == "guide" and p.stem not in ("distributed", "troubleshooting")]
    assert guide and [p.name for p in guide if not python_blocks(p)] == []
