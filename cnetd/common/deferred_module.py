"""A module imported on its first use rather than where a library imports it: for the libraries that import
``importlib.metadata`` at their top and use it only on a path the node never takes (gunicorn: for ``egg:``
worker classes). ``importlib.metadata`` brings ``zipfile``, ``csv``, ``email.message`` and
``importlib.resources`` with it: 3.5 MiB of a bare interpreter, and 1.3 MiB of an idle node's PSS in the api
master and its worker (``bench/idle_memory.py``: 100.7 → 99.4 MiB).

The standard ``importlib.util.LazyLoader`` does not help here: the import statement itself reads the module's
``__spec__``, which makes a lazy module load. A deferred one has a plain ``__spec__`` (None), and loads the real
module when anything else is read from it; from then on it forwards to that module."""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module not imported yet; what is read from it comes from the real one."""

    def __getattr__(self, attribute: str) -> Any:  # only for what the stand-in itself lacks
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def defer_import(name: str) -> None:
    """Call it before anything imports ``name`` (a program's first lines); later it changes nothing. The
    stand-in is also its package's attribute, as an imported module is (``importlib.metadata.version``)."""
    if name not in sys.modules:
        package, _, attribute = name.rpartition(".")
        sys.modules[name] = deferred = DeferredModule(name)
        if package:
            setattr(importlib.import_module(package), attribute, deferred)
