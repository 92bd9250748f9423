"""``asyncvox serve-demo``: the demo API server on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib

import click


def _seconds_range(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[float, float] | None:
    if value is None:
        return None
    from asyncvox.testing import parse_seconds_range

    try:
        return parse_seconds_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("serve-demo")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--api-key", default="demo-key", show_default=True, help="The key the server accepts.")
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests answered with a fault (429, 5xx, dropped connection).",
)
@click.option("--rps-limit", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option(
    "--rate-slow",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of answers sent only after --slow-seconds.",
)
@click.option(
    "--slow-seconds",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="How late a slow answer comes.",
)
@click.option(
    "--analysis-delay",
    callback=_seconds_range,
    default=None,
    metavar="MIN:MAX",
    help="Each call is found only MIN-MAX seconds after its first request, as uploaded "
    "calls are until analysed (some show queued / in_progress / analyzing first).",
)
def serve_demo(
    port: int,
    api_key: str,
    fault_rate: float,
    rps_limit: float | None,
    rate_slow: float,
    slow_seconds: float,
    analysis_delay: tuple[float, float] | None,
) -> None:
    """Run the demo API server on 127.0.0.1 for other tools to use."""
    from asyncvox.testing import DemoServer, FaultProfile

    profile = FaultProfile(
        rate_429=fault_rate * 0.4,
        rate_5xx=fault_rate * 0.5,
        rate_drop=fault_rate * 0.1,
        rate_slow=rate_slow,
        slow_seconds=slow_seconds,
        rps_limit=rps_limit,
        missing_rate=0.02,
        drift_rate=0.05,
    )
    server = DemoServer(
        api_key=api_key, profile=profile, port=port, count_ids=False, analysis_delay=analysis_delay
    )

    async def serve() -> None:
        await server.start()
        click.echo(f"serving the demo call API at {server.base_url} (api key: {api_key}); Ctrl-C stops")
        click.echo(
            f"  try: ASYNCVOX_BASE_URL={server.base_url} ASYNCVOX_API_KEY={api_key} asyncvox get demo-1"
            + (" --wait 60" if analysis_delay else "")
        )
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how this command ends
        asyncio.run(serve())
    click.echo("demo server stopped")
