"""Import a recipe from examples/ by file path (examples/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def load_example(name: str) -> Any:
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"asyncvox_examples.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered, as pydantic resolves annotations through it
    spec.loader.exec_module(module)
    return module
