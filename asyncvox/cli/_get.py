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
    run,
)


@click.command()
@click.argument("call_id")
@click.option("--json", "as_json", is_flag=True, help="Print the call's JSON as the server sent it.")
@api_key_option
@base_url_option
def get(call_id: str, as_json: bool, api_key: str | None, base_url: str | None) -> None:
    """Show one call: status, figures, evaluations and the transcript (or its JSON)."""
    try:
        call_id.encode("utf-8")
    except UnicodeEncodeError:
        # argv bytes that are not UTF-8 arrive as lone surrogates (surrogateescape), which
        # no URL can carry; the library raises UnicodeEncodeError for them today.
        raise click.BadParameter(f"not UTF-8 text: {os.fsencode(call_id)!r}", param_hint="CALL_ID") from None
    client = make_client(api_key, base_url)

    async def one() -> asyncvox.FetchOutcome:
        async with client:
            return await client.fetch(call_id)

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
    click.echo(describe(outcome.call, outcome.dashboard_url))


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}{unit}"
    return f"{value}{unit}"


def describe(call: asyncvox.Call, url: str | None) -> str:
    """A call as a few lines of text: figures, evaluations, transcript."""
    lines = [
        f"call {call.customer_call_id or call.id}  ({call.id})",
        f"  status {_fmt(call.status)}   result {_fmt(call.result)}   duration {_fmt(call.duration, ' s')}",
        f"  latency p50/p90/p95  {_fmt(call.latency_p50)} / {_fmt(call.latency_p90)} / "
        f"{_fmt(call.latency_p95)} s   time to first word {_fmt(call.time_to_first_word, ' s')}",
        f"  interruptions {_fmt(call.num_interruptions)}   errors {len(call.errors or [])}",
    ]
    if call.failure_reason:
        lines.append(f"  failure reason: {call.failure_reason}")
    if url:
        lines.append(f"  dashboard: {url}")
    if call.evaluation_results:
        lines.append("evaluations")
        for ev in call.evaluation_results:
            mark = "pass" if ev.success else "FAIL"
            lines.append(f"  [{mark}] {ev.evaluation_id}: {ev.details or ev.result or ''}")
    if call.messages:
        lines.append("transcript")
        for msg in call.messages:
            at = f"{msg.seconds_from_start:7.1f}s" if msg.seconds_from_start is not None else "       -"
            lines.append(f"  {at}  {msg.role or '?':>9}: {msg.message or ''}")
    return "\n".join(lines)
