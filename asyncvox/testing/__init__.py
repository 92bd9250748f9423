"""Test helpers: a real loopback server of the call API, synthetic calls, a pytest fixture.

* :class:`DemoServer` -- the server (in-process, in a thread, or ``python -m asyncvox.testing``);
* :class:`Fault`, :class:`FaultProfile` -- scripted and random faults;
* :class:`MockTransport` -- answers from a function, no sockets (unit tests of the layers
  above the transport);
* analysis: ``DemoServer(analysis_delay=...)`` and ``server.script_analysis(...)`` make
  calls appear only once "analysed" (:class:`AnalysisPlan`, :class:`StatusStep`), on a
  clock a test can drive (:class:`ManualClock`);
* :class:`RedisServer` -- a real ``redis-server`` on a free loopback port, for fleet
  tests (start, kill as a crash, restart on the same port);
* :func:`synth_call` -- deterministic call JSON shaped like the real server's, from an id
  and a seed;
* :func:`parse_seconds_range`, :func:`parse_seconds` -- the demo server's option parsers
  (shared by ``python -m asyncvox.testing`` and ``asyncvox serve-demo``);
* the ``asyncvox_server`` pytest fixture (registered automatically when asyncvox is
  installed): a running :class:`DemoServer` in a background thread, usable from sync and
  async tests alike.
"""

from ._analysis import AnalysisPlan, AnalysisSimulator, AnalysisView, ManualClock, StatusStep
from ._mock import MockTransport
from ._options import SecondsRange, parse_seconds, parse_seconds_range
from ._redis import RedisServer
from ._synth import envelope, synth_call
from .server import DemoServer, Fault, FaultProfile, RequestRecord, ServerStats

__all__ = [
    "AnalysisPlan",
    "AnalysisSimulator",
    "AnalysisView",
    "DemoServer",
    "Fault",
    "FaultProfile",
    "ManualClock",
    "MockTransport",
    "RedisServer",
    "RequestRecord",
    "SecondsRange",
    "ServerStats",
    "StatusStep",
    "envelope",
    "parse_seconds",
    "parse_seconds_range",
    "synth_call",
]
