"""asyncvox: the asyncio-first client for voice-agent call data.

>>> import asyncvox
>>> async def main() -> None:
...     async with asyncvox.Client() as client:        # $ASYNCVOX_API_KEY
...         call = await client.get_call("my-call-id")  # Call, or None if not found
"""

import logging as _logging

from ._bulk import CallStream
from ._governor import Governor, RetryBudget
from ._version import __version__
from .client import DEFAULT_BASE_URL, Client
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncvoxError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DecodeError,
    EndpointNotFoundError,
    InvalidCallIdError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from .models import (
    Call,
    CallError,
    CallResult,
    CallStatus,
    ContentType,
    Evaluation,
    EvaluationResult,
    EvaluationTemplate,
    EvaluationType,
    Interruption,
    LatencyBlock,
    Message,
    MessageRole,
    Scenario,
    TestAgent,
)
from .outcomes import BatchStats, FetchOutcome
from .retry import RetryPolicy
from .sync import fetch_calls_sync, get_call_sync

# A library logs, the application decides where it goes (and nothing reaches stderr by default).
_logging.getLogger("asyncvox").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncvoxError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStats",
    "Call",
    "CallError",
    "CallResult",
    "CallStatus",
    "CallStream",
    "Client",
    "ConfigurationError",
    "ContentType",
    "DecodeError",
    "EndpointNotFoundError",
    "Evaluation",
    "EvaluationResult",
    "EvaluationTemplate",
    "EvaluationType",
    "FetchOutcome",
    "Governor",
    "Interruption",
    "InvalidCallIdError",
    "LatencyBlock",
    "Message",
    "MessageRole",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryBudget",
    "RetryPolicy",
    "Scenario",
    "ServerError",
    "TestAgent",
    "__version__",
    "fetch_calls_sync",
    "get_call_sync",
]
