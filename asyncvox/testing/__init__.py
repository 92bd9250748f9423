"""Test helpers: a real loopback server of the call API, synthetic calls, a pytest fixture.

* :class:`DemoServer` -- the server (in-process, in a thread, or ``python -m asyncvox.testing``);
* :class:`Fault`, :class:`FaultProfile` -- scripted and random faults;
* :class:`MockTransport` -- answers from a function, no sockets (unit tests of the layers
  above the transport);
* :func:`synth_call` -- deterministic, realistic call JSON from an id and a seed;
* the ``asyncvox_server`` pytest fixture (registered automatically when asyncvox is
  installed): a running :class:`DemoServer` in a background thread, usable from sync and
  async tests alike.
"""

from ._mock import MockTransport
from ._synth import envelope, synth_call
from .server import DemoServer, Fault, FaultProfile, RequestRecord, ServerStats

__all__ = [
    "DemoServer",
    "Fault",
    "FaultProfile",
    "MockTransport",
    "RequestRecord",
    "ServerStats",
    "envelope",
    "synth_call",
]
