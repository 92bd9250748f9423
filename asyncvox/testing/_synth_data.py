"""The vocabulary of the synthetic calls: lines, scenarios, evaluation templates, personas.

Kept apart from the generator (``_synth.py``) so that each reads on its own. Scenarios and
templates are fixed (as an organisation's are): every call of a scenario carries the same
evaluations, and each template fails at its own rate, so some evaluations fail more than
others in any sample.
"""

from __future__ import annotations

from typing import NamedTuple

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
AGENT_LINES = [
    "Thanks for calling, this is Ava, how can I help you today?",
    "I can help with that. Could you give me your full name, please?",
    "Thank you. And what's the best phone number to reach you on?",
    "Let me check that for you, one moment please.",
    "I've found your account. I can see the details here.",
    "Just to confirm, you'd like {detail}, is that right?",
    "Perfect, I've taken care of that. You'll get a confirmation by text shortly.",
    "Is there anything else I can help you with today?",
    "I'm sorry about the trouble. I've escalated it and someone will follow up within a day.",
    "Could you spell that for me, please?",
]
USER_LINES = [
    "Hi, yes, I'm calling about {detail}.",
    "Sure, it's Jordan Alvarez, A-L-V-A-R-E-Z.",
    "It's five five five, zero one nine, two two four eight.",
    "Okay, thanks.",
    "Yes, that's right.",
    "Actually, wait, can you make it a bit later?",
    "No, that's everything, thank you so much.",
    "Sorry, could you repeat that?",
    "Hmm, I thought I already did that last week.",
]
ERROR_TYPES = ["tts_timeout", "asr_low_confidence", "tool_error", "llm_latency_spike"]


class Template(NamedTuple):
    """An evaluation template (``evaluationTemplate``); ``key`` makes its id."""

    key: str
    name: str
    description: str
    content_type: str
    #: Share of calls whose result for this template fails (so some fail more than others).
    fail_rate: float


TEMPLATES = {
    t.key: t
    for t in [
        Template(
            "greeting",
            "Greets the caller",
            "The agent greets the caller and introduces itself",
            "content",
            0.04,
        ),
        Template(
            "verification",
            "Verifies identity",
            "The agent verifies the caller before any change",
            "content",
            0.30,
        ),
        Template(
            "resolution",
            "Resolves the request",
            "The agent resolves what the caller asked for",
            "content",
            0.18,
        ),
        Template("tone", "Polite and concise", "The agent stays polite and concise", "content", 0.07),
        Template(
            "confirmation", "Confirms the details", "The agent reads the final details back", "content", 0.12
        ),
        Template("lookup", "Looks up the account", "The agent calls the account lookup tool", "tool", 0.10),
    ]
}


class Scenario(NamedTuple):
    """A scenario (``scenario``): ``kind`` makes its ids, ``ask`` is what the caller wants."""

    kind: str
    name: str
    #: A format string: ``{n}``, ``{day}``, ``{time}``, ``{order}``, ``{amount}``.
    ask: str
    success_criteria: str
    #: (template key, is critical) of the scenario's evaluations.
    evaluations: tuple[tuple[str, bool], ...]


SCENARIOS = [
    Scenario(
        "booking",
        "Book a table",
        "a table for {n} on {day} at {time}",
        "A booking is made for the right day, time and party size",
        (("greeting", False), ("verification", True), ("confirmation", True), ("tone", False)),
    ),
    Scenario(
        "support",
        "Missing order",
        "my order {order} never arrived",
        "The order is found and a replacement or refund is arranged",
        (("greeting", False), ("lookup", True), ("resolution", True), ("tone", False)),
    ),
    Scenario(
        "billing",
        "Unknown charge",
        "a charge of ${amount} I don't recognise",
        "The charge is explained or disputed",
        (("verification", True), ("lookup", False), ("resolution", True)),
    ),
    Scenario(
        "reschedule",
        "Move an appointment",
        "moving my appointment from {day} to next week",
        "The appointment is moved and confirmed",
        (("greeting", False), ("confirmation", True), ("resolution", False)),
    ),
    Scenario(
        "cancel",
        "Cancel a subscription",
        "cancelling my subscription before {day}",
        "The subscription is cancelled without a retention loop",
        (("verification", True), ("resolution", True), ("tone", False), ("confirmation", False)),
    ),
]
PERSONAS = [
    ("Jordan", "Calm and cooperative"),
    ("Priya", "In a hurry, interrupts"),
    ("Sam", "Annoyed, has called before"),
    ("Mei", "Hard of hearing, asks to repeat"),
]
