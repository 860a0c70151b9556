"""A server in a child process, for tests, benchmarks and apps that want one on the side.

>>> with ServerProcess("artifacts/model.int8.tflite") as server:    # a free port on 127.0.0.1
...     requests.get(server.url + "/v2/health/ready")

It runs ``python -m mnist_edge serve MODEL --port 0`` and reads the port from the line the
command prints once it listens. Leaving the block sends SIGTERM (a graceful stop) and waits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from mnist_edge.errors import MnistEdgeError

__all__ = ["ServerProcess"]

_LISTENING = re.compile(r"on http://(\[[^\]]+\]|[^:/\s]+):(\d+)/")


class ServerProcess:
    """``mnist-edge serve`` in a child process on ``host`` (None: the command's default), on a
    free port unless ``port`` is given."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        host: str | None = "127.0.0.1",
        port: int = 0,
        options: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "mnist_edge",
            "serve",
            str(Path(model)),
            *(["--host", host] if host is not None else []),
            "--port",
            str(port),
            *options,
        ]
        self.timeout = timeout
        self.url = ""
        self.output: list[str] = []  # everything the server printed, stdout and stderr
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        assert self._process is not None, "the server is not started"
        return self._process.pid

    def start(self) -> ServerProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.timeout
        while not self._ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise MnistEdgeError(
                    "the server did not start: " + (" | ".join(self.output[-5:]) or "no output")
                )
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line.rstrip("\n"))
            found = _LISTENING.search(line)
            if found and not self._ready.is_set():
                self.url = f"http://{found.group(1)}:{found.group(2)}"
                self._ready.set()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self._process is not None
            self._process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        assert self._process is not None
        code = self._process.wait(timeout)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then the exit code (SIGKILL if it has not stopped within ``timeout``)."""
        if self._process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
