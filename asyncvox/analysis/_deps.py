"""The optional dependencies of :mod:`asyncvox.analysis`, imported only when used.

``import asyncvox.analysis`` works without them (so the CLI can print a clear message);
the first function that needs pyarrow or matplotlib imports it here and raises
:class:`MissingDependencyError` naming the extra to install when it is absent.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from ..errors import ConfigurationError

__all__ = ["MissingDependencyError", "matplotlib_figure", "pyarrow"]

_EXTRA = "pip install 'asyncvox[analysis]'"


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional package that :mod:`asyncvox.analysis` needs is not installed."""


def _load(name: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs {name.split('.')[0]}, which is not installed: {_EXTRA}"
        ) from exc


@functools.cache
def pyarrow() -> Any:
    """The ``pyarrow`` module, with ``pyarrow.parquet``, ``pyarrow.csv`` and ``pyarrow.compute`` loaded."""
    pa = _load("pyarrow", "asyncvox.analysis (Arrow tables, Parquet, CSV)")
    for sub in ("parquet", "csv", "compute"):
        _load(f"pyarrow.{sub}", "asyncvox.analysis (Arrow tables, Parquet, CSV)")
    return pa


def matplotlib_figure() -> Any:
    """matplotlib's ``Figure`` class (no pyplot: no global state, no GUI backend)."""
    _load("matplotlib", "the report (asyncvox.analysis.write_report)")
    return _load("matplotlib.figure", "the report (asyncvox.analysis.write_report)").Figure
