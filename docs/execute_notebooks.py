"""Execute the notebooks and store them with their outputs, stamped with the code that made them.

    AEREC_DATA_HOME=../shared/data python docs/execute_notebooks.py            # every notebook
    AEREC_DATA_HOME=../shared/data python docs/execute_notebooks.py notebooks/02_image_search.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel, from ``notebooks/`` as its working
directory, and is written back with its outputs. Every code cell gets ``metadata.aerec.source_sha256``,
the SHA-256 of the source its outputs came from, and the notebook gets ``metadata.aerec.code_sha256``
over all its code cells in order. The documentation site shows these stored outputs
(``mkdocs-jupyter`` with ``execute: false``); ``tests/test_notebooks.py`` keeps them honest with the
two checks below:

- :func:`stale_cells` (no kernel needed): a cell edited, added, removed or moved since the outputs
  were made;
- :func:`compare`: the stored outputs against a fresh execution, cell by cell, on what does not
  depend on the machine: the kinds of outputs (text, table, image, error), the printed and displayed
  text with every number taken out, integers exactly, and other numbers within a tolerance.
  A cell tagged ``outputs-vary`` (its output depends on trained weights through more than a float:
  epochs run, rankings of a trained model, a rounded percentage) is compared without its numbers:
  the kinds of outputs and the text around the numbers (column names, row labels, messages) still
  have to match. A cell tagged ``ranking-varies`` shows a trained model's ranked list with words in it
  (titles mapped onto the items): which items make the list depends on float sums that differ between
  CPUs (two items' scores 0.01 apart swap places), so its tables are compared by their shape: the column
  names, the number of rows, how many cells are missing and the ``rank`` column; its printed text as
  under ``outputs-vary``. Durations (``12.3 s``, ``60ms/step``), checksums, temporary directories and the
  folders of file paths are left out, and so is stderr (warnings, logs of servers the notebook starts: when they arrive
  depends on timing).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import sys
import sysconfig
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KEY = "aerec"
#: the cell tag of outputs that depend on training beyond a float's tolerance: compared without their numbers
VARIES = "outputs-vary"
#: the cell tag of a trained model's ranked list shown with words (titles): its tables compared by their shape
RANKING = "ranking-varies"
#: the tolerance on non-integer numbers: training on 2 shared cores is not bit-for-bit repeatable
REL_TOL, ABS_TOL = 0.05, 0.01

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_DURATION = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s?(?:ms|us|µs|s|min|h)(?:/step|/epoch)?\b")
_TEMPORARY = re.compile(r"\btmp[\w\-]{6,}")
_DIGEST = re.compile(r"\b[0-9a-f]{32,}\b")
_FOLDERS = re.compile(r"(?:/[^\s/'\"<>]+)+/")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_HEAD, _BODY = re.compile(r"<thead>(.*?)</thead>", re.S), re.compile(r"<tbody>(.*?)</tbody>", re.S)
_ROW, _CELL = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S), re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)


def source_hash(source: str) -> str:
    """The SHA-256 of one cell's source, trailing whitespace ignored."""
    return hashlib.sha256(source.rstrip().encode()).hexdigest()


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _notebook_hash(notebook) -> str:
    return hashlib.sha256("\n".join(source_hash(c.source) for c in _code_cells(notebook)).encode()).hexdigest()


def execute(notebook, cwd: Path, timeout: int = 600):
    """Run ``notebook`` (a ``NotebookNode``, changed in place) in a fresh kernel with ``cwd`` as working directory.

    The kernel gets this process's environment with matplotlib's inline backend, so figures are
    stored as PNG whatever ``MPLBACKEND`` says here.
    """
    from nbclient import NotebookClient

    # TensorFlow's C++ log (a failed CUDA probe on a machine without a GPU) would land in a cell's stderr
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline", "TF_CPP_MIN_LOG_LEVEL": "3"}
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            coalesce_streams=True, resources={"metadata": {"path": str(cwd)}})
    client.execute(env=env)
    return notebook


def stamp(notebook) -> None:
    """Record in the metadata the source each code cell's outputs were made from."""
    for cell in _code_cells(notebook):
        cell.metadata[KEY] = {"source_sha256": source_hash(cell.source)}
    notebook.metadata[KEY] = {"code_sha256": _notebook_hash(notebook)}


def stale_cells(notebook) -> list[str]:
    """What in ``notebook`` was changed since its stored outputs were made; empty when nothing was."""
    problems = []
    for number, cell in enumerate(_code_cells(notebook), 1):
        stored = cell.metadata.get(KEY, {}).get("source_sha256")
        if stored is None:
            problems.append(f"code cell {number} has no stored outputs stamp (a new cell?)")
        elif stored != source_hash(cell.source):
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            problems.append(f"code cell {number} ({first_line[:60]!r}) was edited after its outputs were made")
    if not problems and notebook.metadata.get(KEY, {}).get("code_sha256") != _notebook_hash(notebook):
        problems.append("code cells were removed or reordered after the outputs were made")
    return problems


def _visible_text(text: str) -> str:
    """What a terminal shows of ``text``: a progress bar's ``\\r`` rewrites and colours dropped."""
    lines = []
    for line in _ANSI.sub("", text).split("\n"):
        shown: list[str] = []
        for char in line.rstrip("\r").rsplit("\r", 1)[-1]:
            if char == "\b":
                del shown[-1:]
            else:
                shown.append(char)
        lines.append("".join(shown).rstrip())
    return "\n".join(lines).strip()


def _comparable(text: str) -> tuple[str, list[str]]:
    """``text`` as (skeleton, numbers): durations, temporary names and folders taken out, numbers set apart."""
    text = _DURATION.sub("<duration>", _visible_text(text))
    text = _FOLDERS.sub(".../", _TEMPORARY.sub("<tmp>", _DIGEST.sub("<digest>", text)))
    return _NUMBER.sub("#", text), _NUMBER.findall(text)


def _kind(output) -> str:
    if output.output_type == "error":
        return "error"
    data = output.get("data", {})
    if any(key.startswith("image/") for key in data):
        return "image"
    if "text/html" in data:
        return "table" if "<table" in data["text/html"] else "html"
    return "text"


def _table_shape(html: str) -> str:
    """A pandas table's HTML as its shape: the column names, the number of body rows, how many cells are
    missing (a title that no longer maps onto its item) and the ``rank`` column (always 1..K)."""
    head, body = _HEAD.search(html), _BODY.search(html)
    columns = [c.strip() for c in _CELL.findall(head.group(1))] if head else []
    rows = [_CELL.findall(row) for row in _ROW.findall(body.group(1))] if body else []
    missing = sum(cell.strip() in ("NaN", "None", "<NA>", "&lt;NA&gt;", "nan") for row in rows for cell in row)
    ranks = [row[columns.index("rank")].strip() for row in rows if "rank" in columns and len(row) == len(columns)]
    return f"columns {columns}, {len(rows)} rows, {missing} missing cells" + (f", ranks {' '.join(ranks)}" if ranks else "")


def _result_text(output, ranking: bool) -> str:
    if output.output_type == "error":
        return output.ename
    data = output.get("data", {})
    if ranking and _kind(output) == "table":
        return _table_shape(data["text/html"])
    return data.get("text/plain", "")


def summary(notebook) -> list[dict]:
    """Per code cell, what :func:`compare` checks: stdout, and each displayed result's kind and text (a
    table's shape in a cell tagged ``ranking-varies``)."""
    cells = []
    for cell in _code_cells(notebook):
        tags = cell.metadata.get("tags", [])
        stdout = "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stdout")
        results = [(_kind(o), _result_text(o, RANKING in tags))
                   for o in cell.get("outputs", []) if o.output_type in ("execute_result", "display_data", "error")]
        cells.append({"stdout": stdout, "results": results, "varies": VARIES in tags or RANKING in tags,
                      "ranking": RANKING in tags})
    return cells


def _same_numbers(stored: list[str], fresh: list[str], rel_tol: float, abs_tol: float) -> str | None:
    for a, b in zip(stored, fresh):
        if _NUMBER.fullmatch(a) and re.fullmatch(r"[-+]?\d+", a) and re.fullmatch(r"[-+]?\d+", b):
            if int(a) != int(b):
                return f"{a} became {b}"
        elif not math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol):
            return f"{a} became {b}"
    return None


def _compare_text(where: str, stored: str, fresh: str, rel_tol: float, abs_tol: float,
                  numbers: bool = True) -> list[str]:
    (stored_skeleton, stored_numbers), (fresh_skeleton, fresh_numbers) = _comparable(stored), _comparable(fresh)
    if stored_skeleton != fresh_skeleton:
        return [f"{where}: the text differs\n--- stored\n{stored_skeleton}\n--- now\n{fresh_skeleton}"]
    changed = _same_numbers(stored_numbers, fresh_numbers, rel_tol, abs_tol) if numbers else None
    return [f"{where}: {changed}"] if changed else []


def compare(stored, fresh, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> list[str]:
    """How the stored outputs of a notebook differ from a fresh execution of it; empty when they agree."""
    old, new = summary(stored), summary(fresh)
    if len(old) != len(new):
        return [f"{len(old)} code cells stored, {len(new)} executed"]
    differences = []
    for number, (a, b) in enumerate(zip(old, new), 1):
        where, numbers = f"code cell {number}", not a["varies"]
        differences += _compare_text(f"{where} stdout", a["stdout"], b["stdout"], rel_tol, abs_tol, numbers)
        kinds_a, kinds_b = [k for k, _ in a["results"]], [k for k, _ in b["results"]]
        if kinds_a != kinds_b:
            differences.append(f"{where}: outputs {kinds_a} stored, {kinds_b} now")
            continue
        for n, ((kind, text_a), (_, text_b)) in enumerate(zip(a["results"], b["results"]), 1):
            if kind != "image":  # a ranked table's shape (columns, row count) is compared with its numbers
                exact = numbers or (a["ranking"] and kind == "table")
                differences += _compare_text(f"{where} output {n} ({kind})", text_a, text_b, rel_tol, abs_tol, exact)
    return differences


def _relative_paths(notebook) -> None:
    """Paths inside the checkout, or of installed packages, written relative in the stored text (warnings name
    their source file)."""
    prefixes = [f"{NOTEBOOKS.parent}/", f"{sysconfig.get_paths()['purelib']}/"]  # and installed packages' paths

    def relative(text: str) -> str:
        for prefix in prefixes:
            text = text.replace(prefix, "")
        return text

    for cell in _code_cells(notebook):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                output.text = relative(output.text)
            elif "text/plain" in output.get("data", {}):
                output.data["text/plain"] = relative(output.data["text/plain"])


def execute_and_store(path: Path) -> None:
    """Execute the notebook at ``path`` and write it back with its outputs, stamped."""
    notebook = nbformat.read(path, as_version=4)
    execute(notebook, path.parent)
    stamp(notebook)
    _relative_paths(notebook)
    nbformat.write(notebook, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    paths = parser.parse_args(argv).notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        print(f"executing {path}", file=sys.stderr)
        execute_and_store(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
