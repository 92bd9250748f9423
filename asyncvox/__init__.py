"""asyncvox: the asyncio-first client for voice-agent call data.

>>> import asyncvox
>>> async def main() -> None:
...     async with asyncvox.Client() as client:        # $ASYNCVOX_API_KEY
...         call = await client.get_call("my-call-id")  # Call, or None if not found
"""

import logging as _logging

from ._testmode import is_testing, set_testing
from ._version import __version__
from .client import DEFAULT_BASE_URL, Client
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncvoxError,
    AuthenticationError,
    BadRequestError,
    CallNotReadyError,
    CertificateError,
    ConfigurationError,
    DecodeError,
    EndpointNotFoundError,
    InvalidCallIdError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
)
from .fleet import FleetState, RedisFleet
from .limits import Governor, GovernorState
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
from .request import USE_CLIENT_DEFAULT
from .retry import RetryBudget, RetryPolicy
from .stream import CallStream
from .sync import fetch_calls_sync, get_call_sync
from .transport import AiohttpTransport, Response, Transport
from .waiting import PollPolicy

# A library logs, the application decides where it goes (and nothing reaches stderr by default).
_logging.getLogger("asyncvox").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_BASE_URL",
    "USE_CLIENT_DEFAULT",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "AsyncvoxError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStats",
    "Call",
    "CallError",
    "CallNotReadyError",
    "CallResult",
    "CallStatus",
    "CallStream",
    "CertificateError",
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
    "FleetState",
    "Governor",
    "GovernorState",
    "Interruption",
    "InvalidCallIdError",
    "LatencyBlock",
    "Message",
    "MessageRole",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "RedisFleet",
    "Response",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryPolicy",
    "Scenario",
    "ServerError",
    "TestAgent",
    "Transport",
    "__version__",
    "fetch_calls_sync",
    "get_call_sync",
    "is_testing",
    "set_testing",
]
