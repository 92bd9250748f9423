"""The call API's data model: msgspec Structs for ``GET /calls/{id}``.

Everything here mirrors the wire contract and knows nothing about HTTP. The models are
built to survive *drift* (the live server sends more and other things than the reference
page documents):

* every field is optional and accepts ``null``;
* enum-like fields are plain ``str``: an undocumented value decodes and is kept as sent.
  The documented values are available as :class:`enum.StrEnum` members, which compare
  equal to the strings (``call.status == CallStatus.COMPLETED``);
* numbers are ``int | float`` and stay exactly as sent (no unit conversion). In the
  server's own units, the call's latency and interruption percentiles and its time to
  first word are rounded **milliseconds**; every ``duration`` and ``seconds_from_start``
  (the call's, a message's, a block's) is **seconds**; a message's ``time`` /
  ``end_time`` are epoch times;
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
    "ContentType",
    "Evaluation",
    "EvaluationResult",
    "EvaluationTemplate",
    "EvaluationType",
    "Interruption",
    "LatencyBlock",
    "Message",
    "MessageRole",
    "Scenario",
    "TestAgent",
]

#: A timezone-aware datetime. A naive or unparsable value is repaired by the decoder's
#: lenient path (naive -> UTC, unparsable -> ``None``) instead of failing the call.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: A JSON number kept as sent: ``3`` stays ``int``, ``3.0`` stays ``float``.
Number = int | float


class CallStatus(StrEnum):
    """Known values of :attr:`Call.status` (others may arrive and are kept as ``str``).

    ``QUEUED`` is in the server's schema, not on the reference page. A call uploaded for
    analysis is usually not found at all (404) until it is ``COMPLETED``.
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    ANALYZING = "analyzing"
    COMPLETED = "completed"


class CallResult(StrEnum):
    """Documented values of :attr:`Call.result`."""

    SUCCESS = "success"
    FAILURE = "failure"


class MessageRole(StrEnum):
    """Known values of :attr:`Message.role`, from both sources; expect either vocabulary.

    The reference page documents ``assistant``, ``user``, ``system``, ``function`` and
    ``tool``; the server's schema has ``user``, ``bot``, ``system``, ``tool_calls`` and
    ``tool_call_result`` (``bot`` is the voice agent, as ``assistant`` is on the page).
    """

    ASSISTANT = "assistant"
    USER = "user"
    SYSTEM = "system"
    FUNCTION = "function"
    TOOL = "tool"
    BOT = "bot"
    TOOL_CALLS = "tool_calls"
    TOOL_CALL_RESULT = "tool_call_result"


class EvaluationType(StrEnum):
    """Known values of :attr:`EvaluationResult.type`, from both sources.

    The reference page documents ``manual`` and ``auto``; the server's schema has
    ``boolean``, ``number`` and ``percentage`` (the kind of value the result holds).
    """

    MANUAL = "manual"
    AUTO = "auto"
    BOOLEAN = "boolean"
    NUMBER = "number"
    PERCENTAGE = "percentage"


class ContentType(StrEnum):
    """Known values of :attr:`EvaluationTemplate.content_type`: what the evaluation judges."""

    #: The agent's tool calls.
    TOOL = "tool"
    #: What was said.
    CONTENT = "content"


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
    """An error that happened during a call (documented, but the server usually omits
    ``errors``: it does not load them)."""

    id: str | None = None
    call_id: str | None = None
    description: str | None = None
    type: str | None = None
    #: Seconds from the start of the call when the error occurred.
    seconds_from_start: Number | None = None
    #: Duration of the error in seconds.
    duration: Number | None = None


class EvaluationTemplate(_Model, frozen=True, gc=False):
    """What an evaluation checks, shared by the evaluations made from it.

    :attr:`name` is the evaluation's human name (what fixa's dashboard shows).
    """

    id: str | None = None
    created_at: AwareDatetime | None = None
    name: str | None = None
    description: str | None = None
    #: The names of the template's parameters (a list of strings, as sent).
    params: Any = None
    #: One of :class:`ContentType` when known (``tool`` or ``content``); others are kept.
    content_type: str | None = None
    tool_call_expected_result: str | None = None
    owner_id: str | None = None
    deleted: bool | None = None
    hidden: bool | None = None


class Evaluation(_Model, frozen=True, gc=False):
    """One evaluation of a scenario: a template with its parameters filled in."""

    id: str | None = None
    created_at: AwareDatetime | None = None
    enabled: bool | None = None
    #: Whether failing this evaluation fails the call.
    is_critical: bool | None = None
    #: The template's parameters filled in (an object of string to string, as sent).
    params: Any = None
    evaluation_template_id: str | None = None
    scenario_id: str | None = None
    evaluation_group_id: str | None = None
    evaluation_template: EvaluationTemplate | None = None


class EvaluationResult(_Model, frozen=True, gc=False):
    """The result of one evaluation run against a call.

    >>> import msgspec
    >>> from asyncvox import EvaluationResult
    >>> wire = b'{"success": false, "evaluation": {"isCritical": true,'
    >>> wire += b' "evaluationTemplate": {"name": "verification"}}}'
    >>> result = msgspec.json.decode(wire, type=EvaluationResult)
    >>> (result.name, result.is_critical, result.success)
    ('verification', True, False)
    """

    id: str | None = None
    created_at: AwareDatetime | None = None
    call_id: str | None = None
    evaluation_id: str | None = None
    #: The evaluation's result text.
    result: str | None = None
    success: bool | None = None
    #: Seconds from the start of the call of the moment judged.
    seconds_from_start: Number | None = None
    #: Seconds.
    duration: Number | None = None
    #: One of :class:`EvaluationType` when known; other values are kept as sent.
    type: str | None = None
    #: Detailed information about the result.
    details: str | None = None
    evaluation_template_id: str | None = None
    #: The evaluation that was run (the server sends it; the reference page does not).
    evaluation: Evaluation | None = None

    @property
    def template(self) -> EvaluationTemplate | None:
        """``evaluation.evaluation_template``, or ``None`` when either is absent."""
        evaluation = self.evaluation
        return evaluation.evaluation_template if evaluation is not None else None

    @property
    def name(self) -> str | None:
        """The evaluation's human name (``evaluation.evaluation_template.name``), or ``None``."""
        template = self.template
        return template.name if template is not None else None

    @property
    def is_critical(self) -> bool | None:
        """``evaluation.is_critical``, or ``None`` when not sent."""
        evaluation = self.evaluation
        return evaluation.is_critical if evaluation is not None else None


class Interruption(_Model, frozen=True, gc=False):
    """A moment where one side talked over the other; both figures in seconds."""

    id: str | None = None
    call_id: str | None = None
    text: str | None = None
    seconds_from_start: Number | None = None
    duration: Number | None = None


class LatencyBlock(_Model, frozen=True, gc=False):
    """A stretch of response latency within the call; both figures in seconds."""

    id: str | None = None
    call_id: str | None = None
    seconds_from_start: Number | None = None
    #: Seconds (the call's ``latency_p*`` are the same gaps in milliseconds).
    duration: Number | None = None


class Message(_Model, frozen=True, gc=False):
    """One turn of the transcript.

    ``time`` and ``end_time`` are epoch times in the server's own unit and
    ``seconds_from_start`` / ``duration`` are seconds; none of them is converted.
    ``role`` comes in either vocabulary (``assistant`` or ``bot`` for the agent; see
    :class:`MessageRole`).
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


class Scenario(_Model, frozen=True, gc=False):
    """The scenario a test call ran: what the test agent was told, and how it is judged."""

    id: str | None = None
    created_at: AwareDatetime | None = None
    agent_id: str | None = None
    name: str | None = None
    instructions: str | None = None
    success_criteria: str | None = None
    include_date_time: bool | None = None
    timezone: str | None = None
    deleted: bool | None = None
    evaluations: list[Evaluation] | None = None


class TestAgent(_Model, frozen=True, gc=False):
    """The simulated caller (persona) of a test call."""

    # Not a pytest test class, despite the name.
    __test__ = False

    id: str | None = None
    owner_id: str | None = None
    name: str | None = None
    headshot_url: str | None = None
    description: str | None = None
    prompt: str | None = None
    enabled: bool | None = None
    default_selected: bool | None = None
    order: Number | None = None


class Call(_Model, frozen=True, gc=False):
    """A voice-agent call with its transcript, latency figures and evaluations.

    >>> import msgspec
    >>> from asyncvox import Call, CallStatus
    >>> call = msgspec.json.decode(b'{"id": "c1", "status": "completed"}', type=Call)
    >>> call.status == CallStatus.COMPLETED
    True

    Units as the server computes them: ``latency_p*``, ``interruption_p*`` and
    ``time_to_first_word`` are rounded milliseconds; ``duration`` is seconds.
    """

    id: str | None = None
    created_at: AwareDatetime | None = None
    #: One of :class:`CallStatus` when known; other statuses are kept as sent.
    status: str | None = None
    stereo_recording_url: str | None = None
    customer_call_id: str | None = None
    owner_id: str | None = None
    agent_id: str | None = None
    deleted: bool | None = None
    #: Seconds.
    duration: Number | None = None
    #: Free text on the server (usually ISO-8601); kept exactly as sent.
    started_at: str | None = None
    #: Free text on the server (usually ISO-8601); kept exactly as sent.
    ended_at: str | None = None
    errors: list[CallError] | None = None
    eval_set_to_success: dict[str, bool | None] | None = None
    evaluation_results: list[EvaluationResult] | None = None
    failure_reason: str | None = None
    #: Median interruption length, rounded milliseconds (``Interruption.duration`` is seconds).
    interruption_p50: Number | None = None
    #: 90th percentile interruption length, rounded milliseconds.
    interruption_p90: Number | None = None
    #: 95th percentile interruption length, rounded milliseconds.
    interruption_p95: Number | None = None
    interruptions: list[Interruption] | None = None
    is_read: bool | None = None
    latency_blocks: list[LatencyBlock] | None = None
    #: Median response latency, rounded milliseconds (``LatencyBlock.duration`` is seconds).
    latency_p50: Number | None = None
    #: 90th percentile response latency, rounded milliseconds.
    latency_p90: Number | None = None
    #: 95th percentile response latency, rounded milliseconds.
    latency_p95: Number | None = None
    messages: list[Message] | None = None
    #: Arbitrary JSON, as sent.
    metadata: Any = None
    mono_recording_url: str | None = None
    notes: str | None = None
    #: How many interruptions lasted longer than 2 seconds (the server counts only those).
    num_interruptions: Number | None = None
    of_one_device_id: str | None = None
    read_by: str | None = None
    region_id: str | None = None
    #: One of :class:`CallResult` when known; other values are kept as sent.
    result: str | None = None
    scenario_id: str | None = None
    test_agent_id: str | None = None
    test_id: str | None = None
    #: Rounded milliseconds until the agent's first word (the reference page says seconds;
    #: the server computes milliseconds).
    time_to_first_word: Number | None = None
    vapi_call_id: str | None = None
    #: The scenario the call ran, with its evaluations (sent by the server, not on the page).
    scenario: Scenario | None = None
    #: The simulated caller of a test call (sent by the server, not on the page).
    test_agent: TestAgent | None = None

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
