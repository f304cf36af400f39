"""A griffe extension: the API reference shows the docstrings Python shows.

A few docstrings are completed when their class is created: the Keras recommenders' shared training
parameters (``{training_parameters}``, filled by ``KerasRecommender.__init_subclass__`` with each
class's own defaults) and Mult-VAE / Mult-DAE's ``{sampled_softmax}``. Griffe reads the source, where
those are still placeholders; for a class whose source docstring holds one, this extension imports
the class and takes its ``__doc__``, so the text is written once, in the code, and rendered complete.
"""
from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

from griffe import AliasResolutionError, Extension, logger

# the classes are imported from the checkout griffe reads (mkdocs.yml's paths), not from another install
_CHECKOUT = str(Path(__file__).resolve().parents[1])
if _CHECKOUT not in sys.path:
    sys.path.insert(0, _CHECKOUT)

_PLACEHOLDER = re.compile(r"^\s*\{[a-z_]+\}\s*$", re.M)


class RuntimeDocstrings(Extension):
    def on_class_members(self, *, cls, **kwargs) -> None:
        if cls.docstring is None or not _PLACEHOLDER.search(cls.docstring.value):
            return
        runtime = getattr(importlib.import_module(cls.module.path), cls.name)
        cls.docstring.value = inspect.cleandoc(runtime.__doc__)


_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`(~?)([\w.]+)(?:\(\))?`")


def _members(obj) -> dict:
    """A scope's names: a class's own and inherited members, another object's members."""
    return obj.all_members if getattr(obj, "is_class", False) else obj.members


def _member(obj, dotted: str):
    """``obj``'s member at ``dotted`` (aliases followed), or None."""
    try:
        for part in dotted.split("."):
            obj = getattr(obj, "final_target", obj)
            members = _members(obj)
            if part not in members:
                return None
            obj = members[part]
        return getattr(obj, "final_target", obj)
    except AliasResolutionError:  # an import of another package (faiss, keras): not ours to link
        return None


class SphinxRoles(Extension):
    """Sphinx cross-reference roles (``:class:`~aerec.EASE```, ``:meth:`recommend```) as links.

    The docstrings are numpydoc, whose cross-references are Sphinx roles; mkdocstrings would show them as
    typed. Each is resolved as Sphinx would (the object's own scope outwards, then the full path) and
    written as an autorefs link to the documented object, shown as code; a link to an object the site
    does not render stays plain code. A role naming nothing in ``aerec`` is a warning, which fails the
    strict build: the docstring is wrong.
    """

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        if pkg.name != "aerec":
            return
        for obj in _walk(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _ROLE.sub(lambda m: _link(obj, loader, m), obj.docstring.value)


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _link(obj, loader, match) -> str:
    short, name = match.group(1), match.group(2)
    shown = name.rsplit(".", 1)[-1] if short else name
    head, _, rest = name.partition(".")
    target, scope = None, obj
    while scope is not None and target is None:
        if head in _members(scope):
            target = _member(scope, name)
        scope = scope.parent
    if target is None and head in loader.modules_collection.members:
        target = _member(loader.modules_collection, name)
    if target is None:
        if head == "aerec" or not rest:
            logger.warning(f"{obj.relative_filepath}:{obj.docstring.lineno}: "
                                                f"cross-reference {match.group(0)} names nothing in aerec")
        return f"`{shown}`"
    return f'<autoref identifier="{target.path}" optional><code>{shown}</code></autoref>'
