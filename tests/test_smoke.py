"""End-to-end: one call, one batch, against the loopback server."""

from __future__ import annotations

import asyncvox
from asyncvox.testing import DemoServer


async def test_get_call_returns_a_typed_call(client: asyncvox.Client) -> None:
    call = await client.get_call("booking-42")
    assert call is not None
    assert call.customer_call_id == "booking-42"
    assert call.status == asyncvox.CallStatus.COMPLETED
    agent = {asyncvox.MessageRole.BOT, asyncvox.MessageRole.ASSISTANT}  # server or page vocabulary
    assert call.messages and call.messages[0].role in agent


async def test_get_calls_returns_one_outcome_per_id_in_order(
    client: asyncvox.Client, server: DemoServer
) -> None:
    server.add_missing("gone")
    ids = [f"id-{i}" for i in range(50)] + ["gone"]
    outcomes = await client.fetch_calls(ids)
    assert [o.call_id for o in outcomes] == ids
    assert all(o.found for o in outcomes[:-1])
    assert outcomes[-1].ok and not outcomes[-1].found
