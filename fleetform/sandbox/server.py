"""Start, stop and inspect the sandbox: a detached moto server process that outlives the command.

``start`` spawns ``python -m fleetform.sandbox.serve`` in its own session, waits until it has
seeded the configuration and written ``<state dir>/server.json`` (pid, port, endpoint), and returns
that record. ``stop`` sends SIGTERM to that pid only.

One state directory per sandbox (``fleetform sandbox up --state-dir``, default ``DEFAULT_DIR``):
its record, log, credentials, and ``upgrades/``, where the runbook records its runs against that
sandbox. The runbook finds it by asking the endpoint (``runs_dir``): the sandbox serving there
knows its own directory, so the two agree whatever the directory and port.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetform.errors import FleetformError

DEFAULT_DIR = ".fleetform/sandbox"
# upgrade state records and audit log of runs against a sandbox, in its state directory (cleared by `sandbox up`)
RUNS_SUBDIR = "upgrades"
# ... and of runs against another server on loopback (a plain moto), which cannot say where its state is
SANDBOX_STATE_DIR = f"{DEFAULT_DIR}/{RUNS_SUBDIR}"
# keys per account that the sandbox writes (fleetform.sandbox.accounts): valid only while it runs
CREDENTIALS_FILE = "credentials"
# the sandbox's answer (its proxy's, unsigned GET) to "which sandbox are you": not an AWS API
INFO_PATH = "/_fleetform/sandbox"
DEFAULT_PORT = 5055
START_TIMEOUT = 60.0


def record_path(directory: str | Path) -> Path:
    return Path(directory) / "server.json"


PROFILE_PREFIX = "sandbox-"  # not a name a real ~/.aws/config profile (SSO, assume-role) would shadow


def profile_name(account: str) -> str:
    """The sandbox's credentials-file profile of ``account`` (sandbox/accounts.py writes them)."""
    return f"{PROFILE_PREFIX}{account}"


def sandbox_info(endpoint_url: str | None, timeout: float = 2.0) -> dict[str, Any] | None:
    """What the fleetform sandbox serving ``endpoint_url`` says of itself (its state dir, credentials
    file and profiles); None for anything else (AWS, a plain moto, nothing listening)."""
    if not endpoint_url:
        return None
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", INFO_PATH)
        answer = connection.getresponse()
        info = json.loads(answer.read()) if answer.status == 200 else None
        return info if isinstance(info, dict) and info.get("sandbox") == "fleetform" else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def runs_dir(endpoint_url: str, timeout: float = 2.0) -> str:
    """Where runs against the endpoint are recorded: ``<state dir>/upgrades`` of the sandbox serving there,
    else SANDBOX_STATE_DIR."""
    info = sandbox_info(endpoint_url, timeout)
    return str(Path(info["state_dir"]) / RUNS_SUBDIR) if info and info.get("state_dir") else SANDBOX_STATE_DIR


def credentials_hint(endpoint_url: str | None, account: str | None = None) -> str:
    """For commands that check whose credentials they hold (preflight, bastion): the sandbox's keys, when
    ``endpoint_url`` is a sandbox; else ''."""
    info = sandbox_info(endpoint_url)
    if not info or not info.get("credentials"):
        return ""
    profiles = info.get("profiles") or {}
    profile = profiles.get(account or "") or profile_name(account or "<account>")
    return (f"; the sandbox at {endpoint_url} has keys per account: AWS_SHARED_CREDENTIALS_FILE="
            f"{info['credentials']} with --profile {profile}")


def read_record(directory: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads(record_path(directory).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # as the server binds: connections of a sandbox just stopped (TIME_WAIT) do not hold the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def status(directory: str | Path) -> dict[str, Any] | None:
    record = read_record(directory)
    if record is None:
        return None
    record["running"] = alive(int(record["pid"]))
    return record


def start(directory: str | Path, port: int, config_dir: str, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    directory = Path(directory)
    current = status(directory)
    if current and current["running"]:
        raise FleetformError(f"the sandbox is already running at {current['endpoint']} (pid {current['pid']}); "
                             "`fleetform sandbox down` first")
    if not port_free(port):
        raise FleetformError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    directory.mkdir(parents=True, exist_ok=True)
    record_path(directory).unlink(missing_ok=True)
    shutil.rmtree(directory / RUNS_SUBDIR, ignore_errors=True)
    (directory / CREDENTIALS_FILE).unlink(missing_ok=True)  # runs recorded against the last sandbox
    log = (directory / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "fleetform.sandbox.serve", "--port", str(port), "--config", config_dir,
         "--record", str(record_path(directory))],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = read_record(directory)
        if record and record.get("ready"):
            return record
        code = process.poll()
        if code is not None:
            tail = (directory / "server.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise FleetformError(f"the sandbox server exited with status {code}:\n  " + "\n  ".join(tail))
        time.sleep(0.1)
    process.terminate()
    raise FleetformError(f"the sandbox did not become ready within {timeout:.0f}s; see {directory / 'server.log'}")


def stop(directory: str | Path, timeout: float = 10.0) -> dict[str, Any] | None:
    record = read_record(directory)
    if record is None:
        return None
    pid = int(record["pid"])
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
            _reap(pid)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
    record_path(directory).unlink(missing_ok=True)
    (Path(directory) / CREDENTIALS_FILE).unlink(missing_ok=True)  # its keys died with it
    return record


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
