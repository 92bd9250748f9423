"""Helpers for the command-line tests: run ``python -m asyncvox`` as users do, read its files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from asyncvox.testing import DemoServer

KEY = "cli-test-key"
#: Runs the CLI with the export's files failing like a full or read-only disk (see the file).
FAULTY_DISK = str(Path(__file__).with_name("_faulty_disk.py"))


def env(server: DemoServer | None, **extra: str) -> dict[str, str]:
    """The environment for a CLI run against ``server`` (none of the caller's ASYNCVOX_*)."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCVOX_")}
    if server is not None:
        result["ASYNCVOX_API_KEY"] = KEY
        result["ASYNCVOX_BASE_URL"] = server.base_url
    result.update(extra)
    return result


def run(
    args: list[str | bytes],
    environ: dict[str, str],
    stdin: str | None = None,
    *,
    via: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI (``via`` a wrapper script instead of ``-m asyncvox``) to completion."""
    entry = [via] if via else ["-m", "asyncvox"]
    return subprocess.run(
        [sys.executable, *entry, *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ids_file(tmp_path: Path, ids: list[str], name: str = "ids.txt") -> Path:
    """Write ``ids`` one per line to ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def exported_ids(out: Path) -> list[str]:
    """The customer ids of the calls in an export, in file order."""
    return [json.loads(line)["customerCallId"] for line in out.read_bytes().splitlines()]


def missing_ids(out: Path) -> list[str]:
    """The ids in an export's not-found sidecar, in file order."""
    path = Path(f"{out}.missing")
    return path.read_text().splitlines() if path.exists() else []


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``asyncvox: error:`` line a clean failure prints (asserting there is one)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("asyncvox: error: "), proc.stderr
    return lines[0]


def snapshot(out: Path) -> dict[str, bytes]:
    """The bytes of an export's files, to show a refused run left them alone."""
    return {p.name: p.read_bytes() for p in sorted(out.parent.glob(out.name + "*")) if p.is_file()}


def kill_when_journalled(
    args: list[str], environ: dict[str, str], done_path: Path, lines: int
) -> int:
    """Start the CLI with ``args``, SIGKILL it once its journal holds ``lines`` lines, and
    return its exit status (``-SIGKILL`` when it was killed, not finished)."""
    proc = subprocess.Popen([sys.executable, "-m", "asyncvox", *args], env=environ)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if done_path.exists() and done_path.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.005)  # polling a file another process writes: no event to wait on
    proc.send_signal(signal.SIGKILL)
    return proc.wait(timeout=10)
