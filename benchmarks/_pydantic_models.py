"""The call models as a generated SDK would write them with pydantic v2, drift-tolerant too.

Same tolerance as asyncvox's models (every field optional, enum-like fields as ``str``,
numbers as ``int | float``, extra fields ignored), so the decode comparison is fair.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class CallError(_Model):
    id: str | None = None
    call_id: str | None = None
    description: str | None = None
    type: str | None = None
    seconds_from_start: int | float | None = None
    duration: int | float | None = None


class EvaluationTemplate(_Model):
    id: str | None = None
    created_at: datetime | None = None
    name: str | None = None
    description: str | None = None
    params: Any = None
    content_type: str | None = None
    tool_call_expected_result: str | None = None
    owner_id: str | None = None
    deleted: bool | None = None
    hidden: bool | None = None


class Evaluation(_Model):
    id: str | None = None
    created_at: datetime | None = None
    enabled: bool | None = None
    is_critical: bool | None = None
    params: Any = None
    evaluation_template_id: str | None = None
    scenario_id: str | None = None
    evaluation_group_id: str | None = None
    evaluation_template: EvaluationTemplate | None = None


class EvaluationResult(_Model):
    id: str | None = None
    created_at: datetime | None = None
    evaluation_id: str | None = None
    result: str | None = None
    details: str | None = None
    success: bool | None = None
    type: str | None = None
    call_id: str | None = None
    duration: int | float | None = None
    evaluation_template_id: str | None = None
    seconds_from_start: int | float | None = None
    evaluation: Evaluation | None = None


class Scenario(_Model):
    id: str | None = None
    created_at: datetime | None = None
    agent_id: str | None = None
    name: str | None = None
    instructions: str | None = None
    success_criteria: str | None = None
    include_date_time: bool | None = None
    timezone: str | None = None
    deleted: bool | None = None
    evaluations: list[Evaluation] | None = None


class TestAgent(_Model):
    id: str | None = None
    owner_id: str | None = None
    name: str | None = None
    headshot_url: str | None = None
    description: str | None = None
    prompt: str | None = None
    enabled: bool | None = None
    default_selected: bool | None = None
    order: int | float | None = None


class Interruption(_Model):
    id: str | None = None
    call_id: str | None = None
    text: str | None = None
    seconds_from_start: int | float | None = None
    duration: int | float | None = None


class LatencyBlock(_Model):
    id: str | None = None
    call_id: str | None = None
    seconds_from_start: int | float | None = None
    duration: int | float | None = None


class Message(_Model):
    id: str | None = None
    call_id: str | None = None
    role: str | None = None
    message: str | None = None
    name: str | None = None
    result: str | None = None
    time: int | float | None = None
    end_time: int | float | None = None
    seconds_from_start: int | float | None = None
    duration: int | float | None = None
    tool_calls: list[Any] | None = None


class Call(_Model):
    id: str | None = None
    created_at: datetime | None = None
    status: str | None = None
    stereo_recording_url: str | None = None
    customer_call_id: str | None = None
    owner_id: str | None = None
    agent_id: str | None = None
    deleted: bool | None = None
    duration: int | float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    errors: list[CallError] | None = None
    eval_set_to_success: dict[str, bool | None] | None = None
    evaluation_results: list[EvaluationResult] | None = None
    failure_reason: str | None = None
    interruption_p50: int | float | None = None
    interruption_p90: int | float | None = None
    interruption_p95: int | float | None = None
    interruptions: list[Interruption] | None = None
    is_read: bool | None = None
    latency_blocks: list[LatencyBlock] | None = None
    latency_p50: int | float | None = None
    latency_p90: int | float | None = None
    latency_p95: int | float | None = None
    messages: list[Message] | None = None
    metadata: Any = None
    mono_recording_url: str | None = None
    notes: str | None = None
    num_interruptions: int | float | None = None
    of_one_device_id: str | None = None
    read_by: str | None = None
    region_id: str | None = None
    result: str | None = None
    scenario_id: str | None = None
    test_agent_id: str | None = None
    test_id: str | None = None
    time_to_first_word: int | float | None = None
    vapi_call_id: str | None = None
    scenario: Scenario | None = None
    test_agent: TestAgent | None = None


class Envelope(_Model):
    success: bool | None = None
    call: Call | None = None
    url: str | None = None
