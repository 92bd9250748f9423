"""The ``asyncvox`` command line (``pip install 'asyncvox[cli]'``).

It sits on top of the library and imports only its public API; the library never imports
it, so ``import asyncvox`` stays free of click and rich.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``asyncvox`` console script and ``python -m asyncvox``."""
    try:
        from ._app import cli
    except KeyboardInterrupt:  # Ctrl-C while click and the library load
        sys.stderr.write("asyncvox: interrupted\n")
        raise SystemExit(130) from None
    except ImportError as exc:  # the cli extra is not installed
        sys.stderr.write(
            f"asyncvox: the command line needs its extra ({exc.name} is missing): "
            "pip install 'asyncvox[cli]'\n"
        )
        raise SystemExit(2) from None
    cli.main(args=argv, prog_name="asyncvox")
