"""asyncvox inside an async web app: a FastAPI service that serves call summaries.

    export ASYNCVOX_API_KEY=...        # or: python -m asyncvox.testing, and point
    python examples/fastapi_app.py     # ASYNCVOX_BASE_URL at the URL it prints (key "test-key")

    curl localhost:8000/calls/booking-123
    curl 'localhost:8000/calls?ids=a,b,c'
    curl -X POST localhost:8000/calls -H 'content-type: application/json' -d '["a", "b"]'

With uvicorn installed, ``uvicorn --factory fastapi_app:create_app`` works too.

One ``asyncvox.Client`` lives for the whole app, opened and closed by the lifespan. A
Client owns one connection pool and one set of limits (concurrency, the client-wide pause
after a 429, the retry budget); a client per request would open a pool per request, and
the upstream would see the sum of every request's concurrency instead of one cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse

import asyncvox

#: Most ids one batch request may ask for: a request's cost should be bounded.
MAX_BATCH = 1000


def summarize(outcome: asyncvox.FetchOutcome) -> dict[str, Any]:
    """The compact view of a found call that the endpoints return."""
    call = outcome.call
    assert call is not None
    evaluations = call.evaluation_results or []
    return {
        "call_id": outcome.call_id,
        "status": call.status,
        "result": call.result,
        "duration": call.duration,
        "latency": {"p50": call.latency_p50, "p90": call.latency_p90, "p95": call.latency_p95},
        "evaluations": {"passed": sum(e.success is True for e in evaluations), "total": len(evaluations)},
        "messages": len(call.messages or []),
        "dashboard_url": outcome.dashboard_url,
    }


def error_body(exc: asyncvox.AsyncvoxError, call_id: str | None) -> dict[str, Any]:
    """What went wrong upstream, for the caller. asyncvox never puts the api key in an error."""
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "call_id": getattr(exc, "call_id", None) or call_id,
        "upstream_status": getattr(exc, "status", None),
    }


def batch_entry(o: asyncvox.FetchOutcome) -> dict[str, Any]:
    """One id's result in a batch answer: found, not found, or failed (with why)."""
    if o.error is not None:
        return {"call_id": o.call_id, "outcome": "failed", "error": error_body(o.error, o.call_id)}
    if o.call is None:
        return {"call_id": o.call_id, "outcome": "not_found"}
    return {"call_id": o.call_id, "outcome": "found", "call": summarize(o)}


def get_client(request: Request) -> asyncvox.Client:
    """The app's one shared client (a dependency, so a test could swap it)."""
    return request.app.state.client  # type: ignore[no-any-return]


# At module level: FastAPI resolves these (string) annotations in the module's namespace.
ClientDep = Annotated[asyncvox.Client, Depends(get_client)]


def create_app(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    concurrency: int = 16,
    request_timeout: float = 10.0,
) -> FastAPI:
    """Build the app. The Client is created in the lifespan, i.e. on the server's event loop
    (a Client belongs to one loop), so building the app needs no api key yet.

    ``request_timeout`` bounds each request end to end: asyncvox's own ``total_timeout``
    covers attempts and retries, but not a wait for a free slot or a 429 pause.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncvox.Client(api_key, base_url, concurrency=concurrency) as client:
            app.state.client = client
            yield
        # Leaving the block closed the pool: no "Unclosed client session" at shutdown.

    app = FastAPI(title="asyncvox call summaries", lifespan=lifespan)

    @app.exception_handler(asyncvox.RateLimitError)
    async def rate_limited(request: Request, exc: asyncvox.RateLimitError) -> JSONResponse:
        # asyncvox already retried and paused; the upstream still says "slow down". Tell our
        # caller the same, as an outage of ours (503), with the wait it asked for.
        retry_after = math.ceil(exc.retry_after) if exc.retry_after is not None else 1
        return JSONResponse(
            error_body(exc, request.path_params.get("call_id")),
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )

    @app.exception_handler(asyncvox.AsyncvoxError)
    async def upstream_failed(request: Request, exc: asyncvox.AsyncvoxError) -> JSONResponse:
        # Everything else (5xx after retries, bad body, connection, even a rejected api key)
        # is the upstream's or our configuration's fault, never the caller's: 502.
        return JSONResponse(error_body(exc, request.path_params.get("call_id")), status_code=502)

    @app.get("/calls/{call_id}")
    async def get_call(call_id: str, client: ClientDep) -> dict[str, Any]:
        # fetch() rather than get_call(): the outcome also carries the dashboard url.
        async with _deadline(request_timeout):
            outcome = await client.fetch(call_id)
        if outcome.error is not None:
            raise outcome.error  # -> one of the handlers above
        if outcome.call is None:
            raise HTTPException(404, detail=f"call {call_id!r} not found")
        return summarize(outcome)

    async def get_many(ids: list[str], client: asyncvox.Client) -> dict[str, Any]:
        if len(ids) > MAX_BATCH:
            raise HTTPException(422, detail=f"at most {MAX_BATCH} ids per request, got {len(ids)}")
        # fetch_calls fans out through the same client: its requests share the one cap with
        # every other request the app is serving. Per-id failures come back as outcomes.
        async with _deadline(request_timeout):
            outcomes = await client.fetch_calls(ids)
        return {"results": [batch_entry(o) for o in outcomes]}

    @app.get("/calls")
    async def get_calls(ids: Annotated[str, Query(description="comma-separated")], client: ClientDep) -> Any:
        return await get_many([i for i in (s.strip() for s in ids.split(",")) if i], client)

    @app.post("/calls")
    async def post_calls(ids: Annotated[list[str], Body()], client: ClientDep) -> Any:
        return await get_many(ids, client)

    return app


@contextlib.asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    """Fail a request that took too long with 504; cancelling asyncvox mid-call is safe."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise HTTPException(504, detail=f"upstream did not answer within {seconds:g} s") from None


if __name__ == "__main__":
    try:
        import uvicorn  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit("serving needs uvicorn: pip install uvicorn") from None
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
