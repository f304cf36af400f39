"""The notebooks in notebooks/ run top to bottom without an error, and the outputs stored in them (what the
documentation site shows) are those their code makes: a cell edited without re-executing the notebook, or
outputs that the code no longer gives, fail here. ``python docs/execute_notebooks.py`` re-executes and
stores them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "docs" / "execute_notebooks.py")
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)

HOW_TO_FIX = "re-execute and store it: AEREC_DATA_HOME=../shared/data python docs/execute_notebooks.py {}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_outputs_were_made_by_the_code_as_it_is(path):
    notebook = nbformat.read(path, as_version=4)
    assert checker.stale_cells(notebook) == [], HOW_TO_FIX.format(path.relative_to(ROOT))
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "stored without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_gives_its_stored_outputs(path):
    stored = nbformat.read(path, as_version=4)
    fresh = checker.execute(nbformat.read(path, as_version=4), path.parent)
    errors = [o for c in fresh.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    differences = checker.compare(stored, fresh)
    assert differences == [], "\n".join(differences) + "\n" + HOW_TO_FIX.format(path.relative_to(ROOT))


# --- the checker itself, on a notebook made here ---------------------------------------------------------
def _tiny_notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# tiny"),
                                           *(nbformat.v4.new_code_cell(s) for s in sources)],
                                    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A tiny notebook executed and stamped, as docs/execute_notebooks.py stores one: a table, a figure, text
    with a duration and a number that changes a little on every run (as a training loss does)."""
    notebook = _tiny_notebook(
        "import time, random\nimport pandas as pd\nstarted = time.perf_counter()",
        "pd.DataFrame({'user': [1, 2], 'item': ['a', 'b']})",
        "print(f'loss {0.5 + 1e-4 * random.random():.5f}, fitted in {time.perf_counter() - started + random.random():.2f} s')",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);",
    )
    checker.execute(notebook, tmp_path_factory.mktemp("tiny"))
    checker.stamp(notebook)
    return notebook


def _rerun(notebook, tmp_path):
    return checker.execute(nbformat.from_dict(notebook), tmp_path)


def test_checker_passes_a_notebook_stored_as_executed(executed, tmp_path):
    assert [o.output_type for o in executed.cells[2].outputs] == ["execute_result"]
    assert checker.summary(executed)[3]["results"][0][0] == "image"
    assert checker.stale_cells(executed) == []
    assert checker.compare(executed, _rerun(executed, tmp_path)) == []  # new loss digits and time: same outputs


def test_checker_fails_a_cell_edited_without_re_executing(executed):
    edited = nbformat.from_dict(executed)
    edited.cells[2].source = edited.cells[2].source.replace("'b'", "'c'")
    assert len(checker.stale_cells(edited)) == 1 and "code cell 2" in checker.stale_cells(edited)[0]


def test_checker_fails_a_cell_removed_or_moved(executed):
    moved = nbformat.from_dict(executed)
    moved.cells[2], moved.cells[3] = moved.cells[3], moved.cells[2]
    assert checker.stale_cells(moved) == ["code cells were removed or reordered after the outputs were made"]


def test_checker_fails_outputs_the_code_no_longer_gives(executed, tmp_path):
    # the source and its stamp agree, but what the cell shows now is another table, or no figure
    changed = nbformat.from_dict(executed)
    changed.cells[2].source = changed.cells[2].source.replace("'item'", "'title'")
    changed.cells[4].source = "import matplotlib.pyplot as plt"
    checker.stamp(changed)
    differences = checker.compare(executed, _rerun(changed, tmp_path))
    assert len(differences) == 2, differences
    assert "code cell 2 output 1 (table): the text differs" in differences[0]
    assert differences[1] == "code cell 4: outputs ['image'] stored, [] now"


def test_checker_compares_integers_exactly_and_other_numbers_within_a_tolerance():
    def notebook_printing(text):
        notebook = _tiny_notebook("print()")
        notebook.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        return notebook

    stored = notebook_printing("(1415, 601) recall 0.4068 in 47.8 s at /tmp/tmpab12cd34/bundle\r")
    assert checker.compare(stored, notebook_printing("(1415, 601) recall 0.4071 in 52.1 s at /tmp/tmpzz99yy00/bundle")) == []
    assert checker.compare(stored, notebook_printing("(1415, 600) recall 0.4068 in 47.8 s at /tmp/tmpab12cd34/bundle")) \
        == ["code cell 1 stdout: 601 became 600"]
    assert checker.compare(stored, notebook_printing("(1415, 601) recall 0.3068 in 47.8 s at /tmp/tmpab12cd34/bundle")) \
        == ["code cell 1 stdout: 0.4068 became 0.3068"]


def test_checker_compares_a_cell_tagged_outputs_vary_without_its_numbers():
    def notebook_printing(text, tags=()):
        notebook = _tiny_notebook("print()")
        notebook.cells[1].metadata["tags"] = list(tags)
        notebook.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        return notebook

    stored = notebook_printing("kept epoch 83 of 113; top items 408, 475", tags=[checker.VARIES])
    assert checker.compare(stored, notebook_printing("kept epoch 80 of 110; top items 475, 919")) == []
    assert checker.compare(stored, notebook_printing("kept epoch 80 of 110; best items 475, 919")) != []
    assert checker.compare(notebook_printing("kept epoch 83 of 113"), notebook_printing("kept epoch 80 of 110")) \
        == ["code cell 1 stdout: 83 became 80"]


def test_checker_compares_a_ranked_table_tagged_ranking_varies_by_its_shape():
    import pandas as pd

    def notebook_showing(frame, tags=(checker.RANKING,)):
        notebook = _tiny_notebook("frame")
        notebook.cells[1].metadata["tags"] = list(tags)
        notebook.cells[1].outputs = [nbformat.v4.new_output(
            "execute_result", data={"text/plain": repr(frame), "text/html": frame.to_html()}, execution_count=1)]
        return notebook

    stored = pd.DataFrame({"item": [318, 423, 357], "title": ["Schindler's List", "E.T.", "Cuckoo's Nest"]})
    swapped = pd.DataFrame({"item": [318, 357, 474], "title": ["Schindler's List", "Cuckoo's Nest", "Dr. Strangelove"]})
    assert checker.compare(notebook_showing(stored), notebook_showing(swapped)) == []
    assert checker.compare(notebook_showing(stored, tags=[checker.VARIES]), notebook_showing(swapped)) != []
    shorter, renamed = swapped.head(2), swapped.rename(columns={"title": "name"})
    assert checker.compare(notebook_showing(stored), notebook_showing(shorter)) \
        == ["code cell 1 output 1 (table): 3 became 2"]
    assert "'name'" in checker.compare(notebook_showing(stored), notebook_showing(renamed))[0]
    # a title that no longer maps onto its item, or ranks out of order, is not a swap of near-tied items
    unmapped = swapped.assign(title=[None, "Cuckoo's Nest", "Dr. Strangelove"])
    assert checker.compare(notebook_showing(stored), notebook_showing(unmapped)) != []
    ranked = stored.assign(rank=[1, 2, 3])
    assert checker.compare(notebook_showing(ranked), notebook_showing(swapped.assign(rank=[1, 2, 3]))) == []
    assert checker.compare(notebook_showing(ranked), notebook_showing(swapped.assign(rank=[3, 2, 1]))) != []
