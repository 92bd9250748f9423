"""examples/fastapi_app.py, driven through httpx's ASGI transport against a loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _examples import load_example

import asyncvox
from asyncvox.testing import DemoServer, Fault, FaultProfile

fastapi_app = load_example("fastapi_app")

KEY = "fastapi-example-key-0123456789"


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    # ASGITransport does not run the lifespan, so enter it the way a server would.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield http


@pytest.fixture
async def server() -> AsyncIterator[DemoServer]:
    async with DemoServer(api_key=KEY, turns=8, profile=FaultProfile(latency=(0.001, 0.004))) as srv:
        yield srv


@pytest.fixture
async def http(server: DemoServer) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(fastapi_app.create_app(api_key=KEY, base_url=server.base_url, concurrency=8)) as h:
        yield h


async def test_hundreds_of_concurrent_requests_share_one_pool(server: DemoServer) -> None:
    concurrency = 8
    ids = [f"call-{i}" for i in range(300)]
    async with asyncvox.Client(KEY, server.base_url) as direct:
        expected = {o.call_id: fastapi_app.summarize(o) for o in await direct.fetch_calls(ids)}
    server.reset_stats()

    app = fastapi_app.create_app(api_key=KEY, base_url=server.base_url, concurrency=concurrency)
    async with serving(app) as http:
        responses = await asyncio.gather(*(http.get(f"/calls/{i}") for i in ids))

    assert [r.status_code for r in responses] == [200] * len(ids)
    assert {r.json()["call_id"]: r.json() for r in responses} == expected
    body = responses[0].json()
    assert body["status"] == "completed" and body["messages"] == 8
    assert body["dashboard_url"].startswith("https://")
    assert 0 <= body["evaluations"]["passed"] <= body["evaluations"]["total"]
    assert server.stats.requests == len(ids)
    # 300 requests at once, but the upstream never saw more than the one client's cap.
    assert 1 < server.stats.peak_in_flight <= concurrency


async def test_not_found_is_404(server: DemoServer, http: httpx.AsyncClient) -> None:
    server.add_missing("gone")
    response = await http.get("/calls/gone")
    assert response.status_code == 404
    assert "gone" in response.json()["detail"]


async def test_upstream_5xx_is_502_with_a_clear_body(server: DemoServer, http: httpx.AsyncClient) -> None:
    server.script("broken", [500] * 20)  # more than the retries: it fails for good
    response = await http.get("/calls/broken")
    assert response.status_code == 502
    assert response.json() == {
        "error": "ServerError",
        "message": "HTTP 500 for call_id='broken': Internal server error",
        "call_id": "broken",
        "upstream_status": 500,
    }
    assert KEY not in response.text


async def test_a_body_that_is_not_a_call_is_502(server: DemoServer, http: httpx.AsyncClient) -> None:
    server.script("garbled", [Fault.garbage()])
    response = await http.get("/calls/garbled")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "DecodeError" and body["call_id"] == "garbled"
    assert body["upstream_status"] is None
    assert KEY not in response.text


async def test_rejected_api_key_is_502_not_401(server: DemoServer) -> None:
    # Our caller did nothing wrong: our own credentials are the problem.
    app = fastapi_app.create_app(api_key="wrong-key", base_url=server.base_url)
    async with serving(app) as http:
        response = await http.get("/calls/a")
    assert response.status_code == 502
    assert response.json()["error"] == "AuthenticationError"
    assert "wrong-key" not in response.text


async def test_upstream_429_is_503_with_retry_after(server: DemoServer, http: httpx.AsyncClient) -> None:
    server.script("hot", [Fault.rate_limited("3")] * 20)  # retry waits are zeroed in tests
    response = await http.get("/calls/hot")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    body = response.json()
    assert body["error"] == "RateLimitError" and body["call_id"] == "hot" and body["upstream_status"] == 429


async def test_a_slow_upstream_is_504_at_the_request_deadline(server: DemoServer) -> None:
    server.script("stuck", [Fault.slow(0.5)])  # the server finishes it at teardown
    app = fastapi_app.create_app(api_key=KEY, base_url=server.base_url, request_timeout=0.02)
    async with serving(app) as http:
        response = await http.get("/calls/stuck")
        assert response.status_code == 504
        # The cancelled fetch gave its slot back: the shared client still works.
        assert (await http.get("/calls/fine")).status_code == 200


async def test_batch_endpoint_get_and_post(server: DemoServer, http: httpx.AsyncClient) -> None:
    server.add_missing("gone")
    server.script("broken", [500] * 20)
    response = await http.get("/calls", params={"ids": "a, b,gone,,broken,a"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["call_id"], r["outcome"]) for r in results] == [
        ("a", "found"),
        ("b", "found"),
        ("gone", "not_found"),
        ("broken", "failed"),
    ]
    assert results[0]["call"]["call_id"] == "a" and results[0]["call"]["messages"] == 8
    assert results[3]["error"]["error"] == "ServerError"

    response = await http.post("/calls", json=[f"p-{i}" for i in range(50)])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["call_id"] for r in results] == [f"p-{i}" for i in range(50)]
    assert {r["outcome"] for r in results} == {"found"}

    too_many = await http.post("/calls", json=[f"x-{i}" for i in range(fastapi_app.MAX_BATCH + 1)])
    assert too_many.status_code == 422
    assert (await http.post("/calls", json={"not": "a list"})).status_code == 422


async def test_shutdown_leaves_no_tasks_and_no_unclosed_session() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []  # aiohttp reports an unclosed session here too
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with DemoServer(api_key=KEY, turns=8) as server:
                app = fastapi_app.create_app(api_key=KEY, base_url=server.base_url, concurrency=4)
                async with serving(app) as http:
                    responses = await asyncio.gather(*(http.get(f"/calls/c-{i}") for i in range(200)))
                    assert {r.status_code for r in responses} == {200}
                    client = app.state.client
                    assert not client.closed
                assert client.closed  # the lifespan closed the shared client
            del app, client, http, responses
            gc.collect()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert [str(w.message) for w in caught] == []
        assert reported == []
    finally:
        loop.set_exception_handler(previous_handler)


async def test_building_the_app_needs_no_api_key_starting_it_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCVOX_API_KEY", raising=False)
    app = fastapi_app.create_app()  # importing and building are free of configuration
    with pytest.raises(asyncvox.ConfigurationError, match="no api key"):
        async with app.router.lifespan_context(app):
            pass
