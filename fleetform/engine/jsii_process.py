"""Start jsii's node kernel without jsii's launcher process (decision 0006).

jsii's Python runtime starts ``node jsii-runtime.js``, a launcher whose only work is to start a second
node process, ``node program.js`` (the kernel), hand it a duplex channel on file descriptor 3, and relay
the kernel's API messages between that channel and its own stdin/stdout. The launcher holds ~45-50 MB
for the whole synth: a third of fleetform's peak memory. Here the kernel is started directly, with one
end of a socket pair as its descriptor 3 and the other end as the channel jsii reads and writes; the
messages, the kernel and its version handshake are jsii's own, unchanged.

``use_direct_kernel()`` installs this before the first jsii call; where jsii's internals are not what
this was written against (another jsii release), or ``FLEETFORM_JSII_LAUNCHER=1`` is set, jsii starts
its launcher as usual. The kernel's own stdout and stderr are this process's (the launcher forwarded
them here too).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

_installed = False


class _Writer:
    """jsii's ``stdin``: writes API requests; ``close()`` tells the kernel no more will come."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._file = channel.makefile("wb")
        self.closed = False

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
            try:
                self._channel.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the kernel is gone already


class _Kernel:
    """What jsii's ``_NodeProcess`` uses of its ``subprocess.Popen``: the channel and the process."""

    def __init__(self, process: subprocess.Popen[bytes], channel: socket.socket) -> None:
        self._process = process
        self._channel = channel
        self.stdin = _Writer(channel)
        self.stdout = channel.makefile("rb")
        self.stderr = channel.makefile("rb", buffering=0)  # jsii closes it; the kernel writes to our stderr itself

    def wait(self, timeout: float | None = None) -> int:
        code = self._process.wait(timeout)
        self._channel.close()
        return code

    def terminate(self) -> None:
        self._process.terminate()


def _start_direct(node_process: Any) -> None:
    environ = {**os.environ, "JSII_AGENT": f"Python/{platform.python_version()}"}
    runtime = Path(environ.get("JSII_RUNTIME") or node_process._jsii_runtime())
    program = runtime.parent.parent / "lib" / "program.js"
    ours, theirs = socket.socketpair()
    try:
        # fd 3 of the kernel is its API channel (as the launcher would give it); its stdin is closed
        process = subprocess.Popen(
            ["sh", "-c", 'exec "$0" "$@" 3<&0 0</dev/null', environ.get("JSII_NODE", "node"),
             "--max-old-space-size=4069", "--preserve-symlinks", str(program)],
            stdin=theirs, env=environ)
    finally:
        theirs.close()
    node_process._process = _Kernel(process, ours)
    node_process.sink_thread = threading.Thread(target=lambda: None, daemon=True)  # nothing to relay
    node_process.sink_thread.start()
    import atexit

    atexit.register(node_process.stop)
    node_process.handshake()


def use_direct_kernel() -> bool:
    """Make jsii start its kernel directly from now on; False where this jsii is not the expected one."""
    global _installed
    if _installed:
        return True
    if os.environ.get("FLEETFORM_JSII_LAUNCHER") == "1":
        return False
    try:
        from jsii._kernel.providers import process as jsii_process
    except ImportError:
        return False
    node_class = getattr(jsii_process, "_NodeProcess", None)
    expected = ("start", "stop", "handshake", "_jsii_runtime", "_next_message", "send")
    if node_class is None or not all(callable(getattr(node_class, name, None)) for name in expected):
        return False
    original = node_class.start

    def start(self: Any) -> None:
        runtime = Path(os.environ.get("JSII_RUNTIME") or self._jsii_runtime())
        if not (runtime.parent.parent / "lib" / "program.js").is_file():
            return original(self)
        return _start_direct(self)

    node_class.start = start
    _installed = True
    return True
