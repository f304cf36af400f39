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

from griffe import Extension

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
