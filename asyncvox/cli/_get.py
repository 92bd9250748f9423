"""``asyncvox get``: one call, as a readable summary or its JSON."""

from __future__ import annotations

import os
import sys

import click

import asyncvox

from ._common import (
    CONFIG_ERRORS,
    EXIT_FAILED,
    EXIT_USAGE,
    api_key_option,
    base_url_option,
    make_client,
    max_body_option,
    run,
)
from ._data_summary import describe_call


@click.command()
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Print the call's JSON as the server sent it.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Wait up to SECONDS for the call's analysis to finish (polling while it is not found "
    "or still queued / in progress / analyzing).",
)
@max_body_option
@api_key_option
@base_url_option
def get(
    call_id: str,
    as_json: bool,
    wait: float | None,
    max_body_bytes: int,
    api_key: str | None,
    base_url: str | None,
) -> None:
    """Show one call: status, figures, evaluations and the transcript (or its JSON).

    Exit status: 0 found, 1 not found, failed or (with --wait) not ready in time,
    2 usage or configuration error.
    """
    try:
        call_id.encode("utf-8")
    except UnicodeEncodeError:
        # argv bytes that are not UTF-8 arrive as lone surrogates (surrogateescape), which
        # no URL can carry; the library raises UnicodeEncodeError for them today.
        raise click.BadParameter(f"not UTF-8 text: {os.fsencode(call_id)!r}", param_hint="CALL_ID") from None
    client = make_client(api_key, base_url, max_body_bytes=max_body_bytes)

    async def one() -> asyncvox.FetchOutcome:
        async with client:
            if wait is None:
                return await client.fetch(call_id)
            outcomes = await client.fetch_calls([call_id], wait=wait)
            return outcomes[0]

    try:
        outcome = run(one())
    except asyncvox.InvalidCallIdError as exc:
        raise click.UsageError(str(exc)) from None
    if outcome.error is not None:
        click.echo(f"asyncvox: {call_id}: {outcome.error}", err=True)
        raise SystemExit(EXIT_USAGE if isinstance(outcome.error, CONFIG_ERRORS) else EXIT_FAILED)
    if outcome.call is None:
        click.echo(f"asyncvox: {call_id}: not found", err=True)
        raise SystemExit(EXIT_FAILED)
    if as_json:
        assert outcome.raw is not None
        sys.stdout.buffer.write(outcome.raw + b"\n")
        return
    click.echo(describe_call(outcome.call, outcome.dashboard_url))
