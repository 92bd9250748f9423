"""Plumbing shared by the benchmark scripts: the loopback server, contender processes, figures.

Not a benchmark itself. Parent side:

* :class:`Server` runs ``python -m asyncvox.testing`` (or, with ``fast=True``, the cheaper
  ``_fastserver.py`` serving the same bodies) in its own process, pinned to CPU 1 (where
  ``os.sched_setaffinity`` exists), and reads how much CPU it burns;
* :func:`run_contender` runs one contender in a fresh interpreter, pinned to CPU 0, and
  returns the JSON dict it printed (plus the server's CPU use during the run);
* :func:`machine_info` / :func:`machine_markdown`, :func:`machine_load` (is the machine
  quiet?), :func:`median` and :func:`write_report` (``results/<name>.md`` + ``.json``).

Child side: :func:`measure` times one async workload (wall clock, CPU s of the whole
process including helper threads, peak RSS via ``resource.getrusage``) and
:func:`emit` prints the result as the last line of stdout.

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
#: Where the scripts write their reports; ``$BENCH_RESULTS_DIR`` overrides it (``run.py --quick``).
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH_DIR / "results")
API_KEY = "test-key"
CLIENT_CPU = 0
SERVER_CPU = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- CPU pinning and accounting ------------------------------------------------------


def can_pin() -> bool:
    """Whether processes can be pinned to the client and server CPUs on this machine."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        cpus = os.sched_getaffinity(0)
    except OSError:
        return False
    return CLIENT_CPU in cpus and SERVER_CPU in cpus


def pin(pid: int, cpu: int) -> bool:
    """Pin process ``pid`` (its future threads included) to one CPU; ``False`` if impossible."""
    if not can_pin():
        return False
    try:
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        return False
    return True


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used so far (Linux ``/proc/stat``), else ``None``."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by another process (Linux ``/proc``), else ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


# -- the loopback server ---------------------------------------------------------------


class ServerProcess:
    """A loopback server in its own process, pinned to the server CPU, that prints its base
    URL as its first line: ``with server as s: s.base_url``. Subclasses set ``args``,
    ``startup_timeout`` and ``command``."""

    args: list[str]
    startup_timeout: float
    proc: subprocess.Popen[str] | None = None
    base_url = ""
    pinned = False

    @property
    def command(self) -> str:
        """The command line, for reports."""
        return " ".join(self.args)

    def start(self) -> str:
        # A fixed hash seed: a server that picks each id's body by hash(id) % pool gives
        # every run (and every process of this run) the same body for the same id.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        self.proc = proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.pinned = pin(proc.pid, SERVER_CPU)
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.startup_timeout):
                self.stop()
                raise RuntimeError(f"no base URL within {self.startup_timeout} s from {self.command}")
        line = proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            self.stop()
            raise RuntimeError(f"unexpected first line from {self.command}: {line!r}\n{err}")
        self.base_url = line
        return line

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.proc.pid) if self.proc is not None else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()



class Server(ServerProcess):
    """``python -m asyncvox.testing`` in its own process; ``with Server([...]) as s: s.base_url``.

    ``fast=True`` runs ``benchmarks/_fastserver.py`` instead: the same bodies (same pool,
    same choice per id) from a bare ``asyncio.Protocol`` on uvloop, several times cheaper
    per request, for pure-throughput runs where aiohttp's web server would be the
    bottleneck. It has no faults, latency or rate limit.
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        startup_timeout: float = 60.0,
        fast: bool = False,
    ) -> None:
        self.fast = fast
        self.server_args = [
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--body-pool",
            "64",
            "--no-count-ids",
            *extra_args,
        ]
        launcher = [str(BENCH_DIR / "_fastserver.py")] if fast else ["-m", "asyncvox.testing"]
        self.args = [sys.executable, *launcher, *self.server_args]
        self.startup_timeout = startup_timeout

    @property
    def command(self) -> str:
        launcher = ["benchmarks/_fastserver.py"] if self.fast else ["-m", "asyncvox.testing"]
        return " ".join(["python", *launcher, *self.server_args])

# -- contender processes -----------------------------------------------------------------


def run_contender(
    argv: Sequence[str], *, server: Server | None = None, timeout: float = 300.0
) -> dict[str, Any]:
    """Run ``python *argv`` in a fresh process pinned to CPU 0; return the JSON dict it emitted.

    With ``server``, adds ``server_util``: the server's CPU seconds during the child's whole
    life over the child's measured wall time (the start-up is idle time for the server).
    ``foreign_load`` is the same for every other process on the machine (in CPUs, e.g. 0.3
    = a third of a core): more than a little means the figures are noisy.
    """
    server_before = server.cpu_seconds() if server is not None else None
    busy_before = machine_busy_seconds()
    children_before = _reaped_children_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pinned = pin(proc.pid, CLIENT_CPU)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"contender timed out after {timeout} s: {' '.join(argv)}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"contender failed ({proc.returncode}): {' '.join(argv)}\n{err[-4000:]}")
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"contender printed no result: {' '.join(argv)}\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["client_pinned"] = pinned
    server_cpu = 0.0
    if server is not None and server_before is not None:
        server_after = server.cpu_seconds()
        if server_after is not None:
            server_cpu = server_after - server_before
            result["server_util"] = server_cpu / result["wall_s"]
    busy_after = machine_busy_seconds()
    if busy_before is not None and busy_after is not None:
        # Over the child's whole life (start-up included), less what it and the server used.
        child_cpu = _reaped_children_cpu_seconds() - children_before
        lifetime = time.perf_counter() - t0
        result["foreign_load"] = max(0.0, busy_after - busy_before - child_cpu - server_cpu) / lifetime
    return result


def _reaped_children_cpu_seconds() -> float:
    """CPU seconds of every child process waited for so far (they add up once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- child side ----------------------------------------------------------------------------


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def measure(
    workload: Callable[[], Awaitable[int]],
    calls: int,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> dict[str, Any]:
    """Run ``workload`` (returns how many calls it found) in a fresh event loop and time it.

    Wall and CPU time cover the workload only, not interpreter start-up and imports;
    ``cpu_s`` is the whole process (helper threads included), ``main_thread_cpu_s`` the
    event loop's thread alone. Peak RSS is the process's high-water mark (interpreter
    included). ``loop_factory`` picks the event loop (e.g. ``uvloop.new_event_loop``);
    ``loop`` in the result names the loop that ran. With ``$BENCH_PROFILE`` set to a path,
    the workload runs under cProfile (``*.prof``) or pyinstrument (``*.html`` / ``*.txt``),
    which slows it down.
    """
    rss_before = _peak_rss_mb()
    profile_to = os.environ.get("BENCH_PROFILE")
    loop_name = ""

    async def timed() -> tuple[int, float, float, float]:
        nonlocal loop_name
        loop = asyncio.get_running_loop()
        loop_name = f"{type(loop).__module__}.{type(loop).__qualname__}"
        t0, c0, m0 = time.perf_counter(), _cpu_now(), time.thread_time()
        found = await workload()
        return found, time.perf_counter() - t0, _cpu_now() - c0, time.thread_time() - m0

    def run() -> tuple[int, float, float, float]:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(timed())

    if profile_to:
        found, wall, cpu, main_cpu = _profiled(run, profile_to)
    else:
        found, wall, cpu, main_cpu = run()
    return {
        "calls": calls,
        "found": found,
        "wall_s": wall,
        "cpu_s": cpu,
        "main_thread_cpu_s": main_cpu,
        "calls_per_s": calls / wall,
        "cpu_ms_per_call": 1000 * cpu / calls,
        "helper_threads_ms_per_call": 1000 * max(0.0, cpu - main_cpu) / calls,
        "client_util": cpu / wall,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_imports_mb": rss_before,
        "loop": loop_name,
        "profiled": bool(profile_to),
    }


def _profiled(run: Callable[[], Any], path: str) -> Any:
    """``run()`` under the profiler that ``path``'s suffix names."""
    if path.endswith(".prof"):
        import cProfile

        profiler = cProfile.Profile()
        result = profiler.runcall(run)
        profiler.dump_stats(path)
        return result
    from pyinstrument import Profiler  # pip install pyinstrument

    with Profiler(async_mode="disabled") as profiler:
        result = run()
    out = profiler.output_html() if path.endswith(".html") else profiler.output_text(unicode=True)
    Path(path).write_text(out)
    return result


def emit(result: dict[str, Any]) -> None:
    """Print a child's result as the last line of stdout (what :func:`run_contender` reads)."""
    print(json.dumps(result), flush=True)


# -- reporting --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return float("nan")


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "asyncvox"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" (asyncvox/ modified)" if dirty else "")


def machine_info() -> dict[str, str]:
    """Versions, CPU and pinning: what a reader needs to judge the figures."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "asyncvox": _version("asyncvox"),
        "aiohttp": _version("aiohttp"),
        "msgspec": _version("msgspec"),
        "tenacity": _version("tenacity"),
        "others": ", ".join(f"{dist} {_version(dist)}" for dist in ("httpx", "pydantic", "orjson", "uvloop")),
        "platform": platform.platform(),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical CPUs, {_memory_gib():.0f} GiB RAM",
        "pinning": (
            f"client on CPU {CLIENT_CPU}, server on CPU {SERVER_CPU}"
            if can_pin()
            else "not available (os.sched_setaffinity missing or CPUs 0/1 not usable)"
        ),
        "git": _git_revision(),
    }


def machine_markdown(info: dict[str, str] | None = None) -> str:
    """:func:`machine_info` as markdown bullet lines."""
    info = machine_info() if info is None else info
    return "\n".join(f"- {key}: {value}" for key, value in info.items())


def machine_load(seconds: float = 2.0) -> float | None:
    """CPUs kept busy by all processes over the next ``seconds`` (0.0 = idle), else ``None``."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    after = machine_busy_seconds()
    if before is None or after is None:
        return None
    return (after - before) / seconds


#: Below this many busy CPUs (all processes together) the machine counts as quiet.
QUIET_LOAD = 0.15


def wait_quiet(limit: float, *, sample: float = 0.5, quiet: float = QUIET_LOAD) -> float | None:
    """Wait until the machine is quiet, at most ``limit`` seconds; return the last load seen.

    On a machine shared with other work, starting a timed run while something else burns a
    CPU spoils it; other processes come and go, so the scripts call this before each run
    (or round) rather than once.
    """
    deadline = time.monotonic() + limit
    load = machine_load(sample)
    told = False
    while load is not None and load > quiet and time.monotonic() < deadline:
        if not told:
            print(
                f"  (machine busy: {load:.2f} CPUs in use; waiting up to {limit:.0f} s for quiet)", flush=True
            )
            told = True
        time.sleep(2.0)
        load = machine_load(sample)
    return load


def write_report(name: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``results/<name>.md`` (for people) and ``results/<name>.json`` (for ``run.py``)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(markdown)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path
