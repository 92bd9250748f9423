"""The job ``fetch`` and ``demo`` share: stream ids through a client into an :class:`Export`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable

import asyncvox

from ._export import Export
from ._progress import progress


async def export_ids(
    client: asyncvox.Client,
    ids: Iterable[str] | AsyncIterable[str],
    export: Export,
    *,
    show_progress: bool,
    total: int | None,
    on_outcome: Callable[[asyncvox.FetchOutcome], None] | None = None,
    wait: float | None = None,
) -> asyncvox.BatchStats:
    """Fetch every id into ``export`` (closing ``client`` after) and return the run's figures.

    With ``wait``, each call is written as soon as its analysis is done (see
    ``Client.iter_calls(wait=...)``); the ones not ready in time go to the not-ready sidecar.
    """
    async with client:
        stream = client.iter_calls(ids, wait=wait)
        with progress(show_progress, total) as update:
            async with stream:
                async for outcome in stream:
                    export.write(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
                    # A waiting batch is slow and its pending count moves: show every call.
                    if wait is not None or stream.stats.done % 64 == 0:
                        update(stream.stats)
                update(stream.stats)
        return stream.stats
