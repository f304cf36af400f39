"""MkDocs hooks: files from outside ``docs/`` in the site, and links to them that work on GitHub too.

The notebooks (``notebooks/*.ipynb``, rendered by mkdocs-jupyter with their stored outputs), the raw
benchmark results (``benchmarks/results/*.md`` and their plots) and ``CONTRIBUTING.md`` live where
the code uses them, not in ``docs/``. They are added to the site at their path in the repository
(``notebooks/01_recommendations.ipynb`` → ``notebooks/01_recommendations.html``).

A page links to them by their real relative path (``../../notebooks/01_recommendations.ipynb`` from
``docs/guide/``), which GitHub follows; :func:`on_page_markdown` rewrites such links to the file's
place in the site, so MkDocs checks them like any other link (a missing file fails the strict build).
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
FROM_THE_REPOSITORY = ["notebooks/*.ipynb", "benchmarks/results/*.md", "benchmarks/results/*.png", "CONTRIBUTING.md"]
_LINK = re.compile(r"(\]\()(<?)(\.\./[^)\s>#]+)(#[^)\s>]*)?(>?\))")


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files, config):
    for pattern in FROM_THE_REPOSITORY:
        for path in sorted(REPO.glob(pattern)):
            files.append(File(path.relative_to(REPO).as_posix(), src_dir=str(REPO), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    docs_dir = Path(config["docs_dir"]).resolve()
    if page.file.abs_src_path is None or docs_dir not in Path(page.file.abs_src_path).resolve().parents:
        return markdown
    page_dir = posixpath.dirname(page.file.src_uri)

    def to_site(match):
        target = (docs_dir / page_dir / match.group(3)).resolve()
        if docs_dir in target.parents or REPO not in target.parents:
            return match.group(0)
        in_site = target.relative_to(REPO).as_posix()
        if files.get_file_from_path(in_site) is None:
            return match.group(0)  # left as written: the strict build reports it
        return "".join((match.group(1), match.group(2), posixpath.relpath(in_site, page_dir or "."),
                        match.group(4) or "", match.group(5)))

    return _LINK.sub(to_site, markdown)
