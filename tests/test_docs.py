"""The documentation site builds in strict mode (a broken link, a missing reference or a docstring that does
not parse fails it), offline, with the notebooks' stored outputs and the docstrings in it."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site_dir = tmp_path_factory.mktemp("site")
    # the checkout's aerec, whatever is installed; Material's banner about MkDocs 2 is no warning of ours
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log
    assert not re.findall(r"^(WARNING|ERROR).*$", log, flags=re.M), log
    return site_dir


def test_every_page_of_the_nav_is_built(site):
    for page in ["index.html", "getting-started.html", "guide/distributed.html", "results/protocol-a.html",
                 "reference/recommenders.html", "notebooks/01_recommendations.html", "CONTRIBUTING.html"]:
        assert (site / page).is_file(), page


def test_nothing_is_fetched_from_another_host(site):
    external = []
    for page in site.rglob("*.html"):
        html = page.read_text()
        external += [f"{page.relative_to(site)}: {m}" for m in
                     re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//[^\"']+", html)]
    assert external == []


def test_the_notebooks_are_shown_with_their_outputs(site):
    for page in (site / "notebooks").glob("*.html"):
        html = page.read_text()
        assert "jp-OutputArea" in html, page.name
    assert "data:image/png;base64," in (site / "notebooks" / "02_image_search.html").read_text()
    assert "<table" in (site / "notebooks" / "01_recommendations.html").read_text()


def test_the_reference_shows_the_docstrings_as_python_does(site):
    html = (site / "reference" / "recommenders.html").read_text()
    # MultVAE's training parameters are filled into its docstring when the class is made
    multvae = html[html.index('id="aerec.recommend.multvae.MultVAE"'):html.index('id="aerec.recommend.recvae.RecVAE"')]
    assert "{training_parameters}" not in multvae and "Users per update." in multvae
    assert 'id="aerec.recommend.base.Recommender.recommend_for_history"' in html


def test_sphinx_roles_in_docstrings_become_links(site):
    pages = {p.name: p.read_text() for p in (site / "reference").glob("*.html")}
    assert [name for name, html in pages.items() if re.search(r":(class|meth|func|mod|attr|exc):`", html)] == []
    # EASE's docstring names :class:`~aerec.exceptions.CatalogueTooLargeError`: a link to its entry
    ease = pages["recommenders.html"].split('id="aerec.recommend.ease.EASE"')[1].split('id="aerec.recommend.elsa.ELSA"')[0]
    assert 'href="exceptions.html#aerec.exceptions.CatalogueTooLargeError"' in ease


def test_a_role_that_names_nothing_is_a_warning_and_the_others_links(tmp_path, caplog):
    griffe = pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_runtime_docstrings", ROOT / "docs" / "griffe_runtime_docstrings.py")
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    package = tmp_path / "aerec"
    package.mkdir()
    (package / "__init__.py").write_text('"""See :class:`~aerec.models.Net`, :meth:`Net.fit`, :func:`aerec.nothing` and '
                                         ':class:`~numpy.ndarray`."""\nfrom .models import Net\n')
    (package / "models.py").write_text('class Net:\n    """A network; :meth:`fit` trains it."""\n\n'
                                       '    def fit(self):\n        """Train."""\n')
    with caplog.at_level("WARNING"):
        loaded = griffe.load(str(package), search_paths=[tmp_path], extensions=griffe.load_extensions(extension.SphinxRoles))
    assert loaded.docstring.value == (
        'See <autoref identifier="aerec.models.Net" optional><code>Net</code></autoref>, '
        '<autoref identifier="aerec.models.Net.fit" optional><code>Net.fit</code></autoref>, '
        "`aerec.nothing` and `ndarray`.")
    assert 'identifier="aerec.models.Net.fit"' in loaded["models.Net"].docstring.value  # a method named from its class
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].endswith("aerec/__init__.py:1: cross-reference :func:`aerec.nothing` names nothing in aerec")
