"""The call API's data model: msgspec Structs for ``GET /calls/{id}``.

Everything here mirrors the wire contract and knows nothing about HTTP. The models are
built to survive *drift* (the live server sends more and other things than the reference
page documents):

* every field is optional and accepts ``null``;
* enum-like fields are plain ``str``: an undocumented value decodes and is kept as sent.
  The documented values are available as :class:`enum.StrEnum` members, which compare
  equal to the strings (``call.status == CallStatus.COMPLETED``);
* numbers are ``int | float`` and stay exactly as sent (no unit conversion);
* unknown fields are ignored by the typed view but never lost: the server's own bytes
  for each call stay available (``FetchOutcome.raw``).

All Structs are frozen and ``gc=False`` (they never form reference cycles), which keeps
decoding fast and garbage collection cheap when tens of thousands are alive at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

__all__ = [
    "Call",
    "CallError",
    "CallResult",
    "CallStatus",
    "EvaluationResult",
    "EvaluationType",
    "Interruption",
    "LatencyBlock",
    "Message",
    "MessageRole",
]

#: A timezone-aware datetime. A naive or unparsable value is repaired by the decoder's
#: lenient path (naive -> UTC, unparsable -> ``None``) instead of failing the call.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: A JSON number kept as sent: ``3`` stays ``int``, ``3.0`` stays ``float``.
Number = int | float


class CallStatus(StrEnum):
    """Documented values of :attr:`Call.status` (others may arrive and are kept as ``str``)."""

    IN_PROGRESS = "in_progress"
    ANALYZING = "analyzing"
    COMPLETED = "completed"


class CallResult(StrEnum):
    """Documented values of :attr:`Call.result`."""

    SUCCESS = "success"
    FAILURE = "failure"


class MessageRole(StrEnum):
    """Documented values of :attr:`Message.role`."""

    ASSISTANT = "assistant"
    USER = "user"
    SYSTEM = "system"
    FUNCTION = "function"
    TOOL = "tool"


class EvaluationType(StrEnum):
    """Documented values of :attr:`EvaluationResult.type`."""

    MANUAL = "manual"
    AUTO = "auto"


class _Model(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename="camel",
    gc=False,
    omit_defaults=True,
    repr_omit_defaults=True,
):
    """Base of every wire model: frozen, camelCase on the wire, snake_case in Python."""


class CallError(_Model, frozen=True, gc=False):
    """An error that happened during a call."""

    id: str | None = None
    call_id: str | None = None
    description: str | None = None
    type: str | None = None
    #: Seconds from the start of the call when the error occurred.
    seconds_from_start: Number | None = None
    #: Duration of the error in seconds.
    duration: Number | None = None


class EvaluationResult(_Model, frozen=True, gc=False):
    """The result of one evaluation run against a call."""

    id: str | None = None
    created_at: AwareDatetime | None = None
    evaluation_id: str | None = None
    #: The evaluation's result text.
    result: str | None = None
    #: Detailed information about the result.
    details: str | None = None
    success: bool | None = None
    #: ``"manual"`` or ``"auto"`` (see :class:`EvaluationType`); other values are kept.
    type: str | None = None
    call_id: str | None = None
    duration: Number | None = None
    evaluation_template_id: str | None = None
    seconds_from_start: Number | None = None


class Interruption(_Model, frozen=True, gc=False):
    """A moment where one side talked over the other."""

    id: str | None = None
    call_id: str | None = None
    text: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None


class LatencyBlock(_Model, frozen=True, gc=False):
    """A stretch of response latency (seconds) within the call."""

    id: str | None = None
    call_id: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None


class Message(_Model, frozen=True, gc=False):
    """One turn of the transcript.

    ``time`` and ``end_time`` are epoch times in the server's own unit and
    ``seconds_from_start`` / ``duration`` are seconds; none of them is converted.
    """

    id: str | None = None
    call_id: str | None = None
    #: One of :class:`MessageRole` when documented; other roles are kept as sent.
    role: str | None = None
    #: The content of the message.
    message: str | None = None
    name: str | None = None
    result: str | None = None
    time: Number | None = None
    end_time: Number | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None
    #: Tool calls as the server sent them (JSON objects).
    tool_calls: list[Any] | None = None


class Call(_Model, frozen=True, gc=False):
    """A voice-agent call with its transcript, latency figures and evaluations.

    >>> import msgspec
    >>> from asyncvox import Call, CallStatus
    >>> call = msgspec.json.decode(b'{"id": "c1", "status": "completed"}', type=Call)
    >>> call.status == CallStatus.COMPLETED
    True
    """

    id: str | None = None
    created_at: AwareDatetime | None = None
    #: One of :class:`CallStatus` when documented; other statuses are kept as sent.
    status: str | None = None
    stereo_recording_url: str | None = None
    customer_call_id: str | None = None
    agent_id: str | None = None
    deleted: bool | None = None
    duration: Number | None = None
    #: Free text on the server (usually ISO-8601); kept exactly as sent.
    started_at: str | None = None
    #: Free text on the server (usually ISO-8601); kept exactly as sent.
    ended_at: str | None = None
    errors: list[CallError] | None = None
    eval_set_to_success: dict[str, bool | None] | None = None
    evaluation_results: list[EvaluationResult] | None = None
    failure_reason: str | None = None
    interruption_p50: Number | None = None
    interruption_p90: Number | None = None
    interruption_p95: Number | None = None
    interruptions: list[Interruption] | None = None
    is_read: bool | None = None
    latency_blocks: list[LatencyBlock] | None = None
    latency_p50: Number | None = None
    latency_p90: Number | None = None
    latency_p95: Number | None = None
    messages: list[Message] | None = None
    #: Arbitrary JSON, as sent.
    metadata: Any = None
    mono_recording_url: str | None = None
    notes: str | None = None
    num_interruptions: Number | None = None
    of_one_device_id: str | None = None
    read_by: str | None = None
    region_id: str | None = None
    #: One of :class:`CallResult` when documented; other values are kept as sent.
    result: str | None = None
    scenario_id: str | None = None
    test_agent_id: str | None = None
    test_id: str | None = None
    time_to_first_word: Number | None = None
    vapi_call_id: str | None = None

    @property
    def started_at_datetime(self) -> datetime | None:
        """:attr:`started_at` parsed as ISO-8601, or ``None`` when absent or not ISO-8601."""
        return _parse_iso(self.started_at)

    @property
    def ended_at_datetime(self) -> datetime | None:
        """:attr:`ended_at` parsed as ISO-8601, or ``None`` when absent or not ISO-8601."""
        return _parse_iso(self.ended_at)


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
