"""The fleet benchmark's web-app scenario: uvicorn workers and a bulk job on one key's limit.

Not a benchmark itself; ``bench_fleet.py --scenarios webapp`` runs it. One run:

1. a ``_shapes_server`` limiter (limit R) and, unless "alone", a ``redis-server``;
2. ``uvicorn --workers W`` serving ``_webapp:app`` on a free 127.0.0.1 port, each worker
   with its own ``asyncvox.Client`` configured from the environment (it joins the fleet
   through ``ASYNCVOX_REDIS_URL`` when that is set, which is all "redis" changes);
3. a load generator process (aiohttp) sending ``GET /calls/w-<i>`` open-loop at a fixed
   rate L (a share of R), latency measured from each request's scheduled time, so a
   stalled app is not hidden by requests that were never sent;
4. after a warm-up, a bulk job process fetching ``bulk-0 .. bulk-<N-1>`` (the same key,
   the same environment) while the load goes on; when it is done the load stops.

Child sides: ``python benchmarks/_webrun.py --load URL RATE`` (stops when stdin gets a
line) and ``python benchmarks/_webrun.py --bulk N``; both print one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import API_KEY, BENCH_DIR
from _fleet_common import RedisServer, percentile, recovery, run_batch
from _shapes import Params
from _shapes_server import ShapeServer

__all__ = ["WebParams", "run_webapp"]

#: Seconds of load before the bulk job starts (the workers' clients warm up).
WARM_UP = 2.0
#: Seconds uvicorn may take to have every worker's client open.
STARTUP_TIMEOUT = 60.0
#: Seconds a load request may take before it counts as failed.
REQUEST_TIMEOUT = 120.0


class WebParams(NamedTuple):
    """One web-app run's knobs."""

    shape: str
    rate: float
    bulk: int
    load_share: float
    workers: int

    @property
    def load_rate(self) -> float:
        return self.rate * self.load_share

    @property
    def ideal(self) -> float:
        """The bulk job's best time: its ids at what the load leaves of the limit."""
        return self.bulk / (self.rate - self.load_rate)


# -- child: the load generator --------------------------------------------------------------


async def load(url: str, rate: float) -> None:
    """Open-loop ``GET`` at ``rate``/s until stdin gets a line; print each request's record."""
    import aiohttp

    records: list[tuple[float, float, bool]] = []  # scheduled at, latency, ok
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int, at: float) -> None:
            ok = False
            try:
                async with session.get(f"{url}/calls/w-{i}") as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                pass
            records.append((at, time.monotonic() - at, ok))

        tasks: set[asyncio.Task[None]] = set()
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            at = t0 + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    break
            task = asyncio.create_task(one(i, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        sent = i
        if tasks:
            await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT)
    print(json.dumps({"sent": sent, "records": records}), flush=True)


# -- parent: uvicorn ------------------------------------------------------------------------


class Uvicorn:
    """``uvicorn --workers N`` on a free port, in its own process group; ready = every worker's
    client open and ``/healthz`` answering. Stopped with SIGINT (the workers' lifespans close
    their clients), then the whole group is killed whatever happened."""

    def __init__(self, workers: int, env: dict[str, str], workdir: Path) -> None:
        self.workers, self.env, self.workdir = workers, env, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Uvicorn:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        from _fleet_common import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (self.workdir / "uvicorn.log").open("wb")
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(self.workers), "--no-access-log",
               "--log-level", "warning", "--lifespan", "on", "_webapp:app"]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            if len(list(self.workdir.glob("ready-*"))) >= self.workers and self._healthy():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"uvicorn: not every one of {self.workers} workers ready within {STARTUP_TIMEOUT:g} s "
            f"({len(list(self.workdir.glob('ready-*')))} were):\n{self.log_tail()}"
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            return (self.workdir / "uvicorn.log").read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    self._report_hang()
            # The workers are in the master's group (start_new_session): none outlives the run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _report_hang(self) -> None:
        """Ask the workers still alive for their asyncio tasks (``_webapp``'s SIGUSR1), show them."""
        stuck = []
        for ready in self.workdir.glob("ready-*"):
            pid = int(ready.name.split("-", 1)[1])
            if not (self.workdir / f"stats-{pid}.json").exists():
                stuck.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        print(
            f"uvicorn did not stop within 30 s of SIGINT (workers not done: {stuck}); killing it. "
            f"Its log:\n{self.log_tail()}",
            file=sys.stderr,
        )

    def stats(self) -> list[dict[str, Any]]:
        """What each worker wrote at shutdown (call after :meth:`stop`)."""
        return [json.loads(p.read_text()) for p in sorted(self.workdir.glob("stats-*.json"))]


# -- parent: one run ------------------------------------------------------------------------


async def _child(*args: str, env: dict[str, str], stdin: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
    )


async def _last_json(proc: asyncio.subprocess.Process, what: str) -> dict[str, Any]:
    out, _ = await proc.communicate()
    lines = out.decode().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {what} process failed (exit {proc.returncode}); see its stderr above")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


async def run_webapp(p: WebParams, redis: RedisServer | None, kill: bool) -> dict[str, Any]:
    """One run (module docstring); ``redis=None`` = every process on its own governor.

    With ``kill``, Redis is killed a quarter of the bulk job's ideal time after it starts
    and restarted a quarter later.
    """
    params = Params(p.bulk, p.rate, 16 * (p.workers + 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCVOX_")}
    with ShapeServer(p.shape, params) as server, tempfile.TemporaryDirectory() as tmp:
        env.update(ASYNCVOX_API_KEY=API_KEY, ASYNCVOX_BASE_URL=server.base_url, BENCH_WEBAPP_DIR=tmp)
        if redis is not None:
            env["ASYNCVOX_REDIS_URL"] = redis.url
        restarted: float | None = None
        with Uvicorn(p.workers, env, Path(tmp)) as app:
            loader = await _child("--load", app.url, str(p.load_rate), env=env, stdin=True)
            bulk_proc: asyncio.subprocess.Process | None = None
            try:
                await asyncio.sleep(WARM_UP)
                bulk_proc = await _child("--bulk", str(p.bulk), env=env)
                if kill and redis is not None:
                    await asyncio.sleep(p.ideal / 4)
                    redis.kill()
                    await asyncio.sleep(p.ideal / 4)
                    redis.start()
                    restarted = time.monotonic()
                bulk = await _last_json(bulk_proc, "bulk job")
                assert loader.stdin is not None
                loader.stdin.write(b"stop\n")
                await loader.stdin.drain()
                web = await _last_json(loader, "load generator")
            finally:
                # On any failure above: no child outlives the run.
                for child in (loader, bulk_proc):
                    if child is not None and child.returncode is None:
                        child.kill()
                        await child.wait()
        workers = app.stats()
    res = _summary(p, bulk, web, workers, restarted)
    # A worker that hung at shutdown (its stacks are on stderr) wrote no counts: the row
    # says so rather than the whole benchmark ending.
    res["missing_workers"] = p.workers - len(workers)
    return res


def _summary(
    p: WebParams, bulk: dict[str, Any], web: dict[str, Any], workers: list[dict[str, Any]],
    restarted: float | None,
) -> dict[str, Any]:
    records = web["records"]
    during = [lat for at, lat, _ in records if bulk["started"] <= at <= bulk["finished"]]
    before = [lat for at, lat, _ in records if at < bulk["started"]]
    requests = bulk["requests"] + sum(w["requests"] for w in workers)
    res: dict[str, Any] = {
        "ratio": (bulk["finished"] - bulk["started"]) / p.ideal,
        "bulk_seconds": bulk["finished"] - bulk["started"],
        "ideal": p.ideal,
        "throttled": (bulk["throttles"] + sum(w["throttles"] for w in workers)) / requests,
        "bulk_throttled": bulk["throttles"] / max(1, bulk["requests"]),
        "web_throttled": sum(w["throttles"] for w in workers) / max(1, requests - bulk["requests"]),
        "lost": bulk["lost"],
        # a request never answered (timed out in the generator) is failed too
        "web_failed": web["sent"] - sum(ok for _, _, ok in records),
        "web_sent": web["sent"],
        "web_p50": percentile(during, 0.5),
        "web_p99": percentile(during, 0.99),
        "web_p50_before": percentile(before, 0.5),
        "rt_per_request": (bulk["round_trips"] + sum(w["round_trips"] for w in workers)) / requests,
        "cpu_us_per_request": 1e6 * (bulk["cpu"] + sum(w["cpu"] for w in workers)) / requests,
        "fallbacks": bulk["fallbacks"] + sum(w["fallbacks"] for w in workers),
        "recovery": None,
        "rejoined": sum(x["link"] == "fleet" for x in [bulk, *workers]),
        "processes": 1 + len(workers),
    }
    if restarted is not None:
        done = bulk["done_at"] + [t for w in workers for t in w["done_at"] if t <= bulk["finished"]]
        rec = recovery(done, restarted, p.rate)
        res["recovery"] = rec._asdict() if rec is not None else None
    return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        asyncio.run(load(sys.argv[2], float(sys.argv[3])))
    elif sys.argv[1:2] == ["--bulk"]:
        print(json.dumps(asyncio.run(run_batch(None, "bulk", int(sys.argv[2]), None))._asdict()), flush=True)
    else:
        sys.exit(__doc__)
