"""What every command shares: exit codes, running a coroutine, the client and its options."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

import asyncvox
from asyncvox.transport import DEFAULT_MAX_BODY_BYTES, MIN_MAX_BODY_BYTES

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: Errors that no retry or other id can fix: exit 2 with one line.
CONFIG_ERRORS = (
    asyncvox.ConfigurationError,
    asyncvox.AuthenticationError,
    asyncvox.PermissionDeniedError,
    asyncvox.EndpointNotFoundError,
)


def fail(message: str) -> NoReturn:
    """End the command with exit 2 and one line on stderr: ``asyncvox: error: <message>``."""
    click.echo(f"asyncvox: error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (``asyncvox[speed]``), mapping errors to exit codes.

    Ctrl-C (``asyncio.run`` turns it into KeyboardInterrupt once ``coro`` has unwound) is
    mapped to exit 130 by the ``asyncvox`` group, for every command and at any point.
    """
    try:
        try:
            import uvloop  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return asyncio.run(coro)
        return uvloop.run(coro)  # type: ignore[no-any-return, unused-ignore]
    except CONFIG_ERRORS as exc:
        fail(str(exc))


def make_client(api_key: str | None, base_url: str | None, **kwargs: Any) -> asyncvox.Client:
    """A :class:`asyncvox.Client`, or exit 2 with one line if its configuration is wrong."""
    try:
        return asyncvox.Client(api_key, base_url, **kwargs)
    except asyncvox.ConfigurationError as exc:
        fail(str(exc))


#: ``--api-key`` (``ASYNCVOX_API_KEY``), for commands that talk to the API.
api_key_option = click.option(
    "--api-key",
    envvar="ASYNCVOX_API_KEY",
    show_envvar=True,
    help="Bearer token (never printed).",
)
#: ``--max-body-bytes``: the client's ``max_body_bytes`` (the largest answer it reads).
max_body_option = click.option(
    "--max-body-bytes",
    type=click.IntRange(min=MIN_MAX_BODY_BYTES),
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    help="Largest answer read (decompressed); a call over it fails as ResponseTooLargeError.",
)
#: ``--base-url`` (``ASYNCVOX_BASE_URL``), for commands that talk to the API.
base_url_option = click.option(
    "--base-url", envvar="ASYNCVOX_BASE_URL", show_envvar=True, help="API base URL."
)


def out_file(ctx: click.Context, param: click.Parameter, value: str | Path) -> Path:
    """``--out``'s callback: the path, unless it names a directory (exit 2).

    ``click.Path(dir_okay=False)`` looks only at a path that exists, and ``Path`` drops
    a trailing slash: ``""`` had no name to put ``.missing`` after (a traceback), and
    ``calls/`` wrote the calls to a file named ``calls``.
    """
    text = os.fspath(value)  # a default may be a Path already
    if not text or text.endswith(("/", os.sep)):
        raise click.BadParameter(f"{text!r} names a directory, not a file", ctx=ctx, param=param)
    return Path(text)
