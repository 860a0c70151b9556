"""Load and run model bytes in a child process with memory and time limits.

Why: the structural pre-checks refuse every crashing and memory-hungry file we have found, but an
engine is native code and a model file from elsewhere may find a bug nobody has found yet. A
segfault, an abort or a 10 GB allocation inside the app's own process cannot be caught; inside a
child it is only a dead child. :func:`check_isolated` (used by ``load(path, isolate=True)``) opens
the exact bytes the app is about to load, runs a few batches and reports back; only if that
succeeded does the app load them itself.

The child is a fresh Python running :func:`~mnist_edge.runtime.guard.child.serve`: it limits
its own address space (``RLIMIT_AS``, 2 GiB by default), CPU time and core dumps, then serves
trials - one JSON header line plus the model bytes on stdin, one JSON result line on stdout -
until stdin closes. The parent enforces the wall-clock timeout and restarts a child that died, so
one :class:`Sandbox` can also run thousands of trials (the fuzz tests do). Linux and macOS: the
child is ``sys.executable``, and the parent waits on its pipe with ``selectors``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from mnist_edge.errors import ModelLoadError

__all__ = ["DEFAULT_MEMORY_BYTES", "DEFAULT_TIMEOUT_S", "Sandbox", "Trial", "check_isolated"]

DEFAULT_MEMORY_BYTES = 2 << 30
DEFAULT_TIMEOUT_S = 30.0

#: Outcomes of a trial. "ran": loaded, and every batch gave finite rows summing to 1;
#: "refused": ModelLoadError; "error": any other exception (a bug: engines' exceptions must be
#: wrapped); "bad-output": ran but gave NaN, wrong shapes or rows not summing to 1; "memory":
#: MemoryError under the limit; "crashed": the child died by a signal; "died": it exited;
#: "timeout": no answer within the time limit (the child is killed).
OUTCOMES = ("ran", "refused", "error", "bad-output", "memory", "crashed", "died", "timeout")
_STDERR_TAIL = 2000
# The child imports the runtime's loader; this module must not (the loader imports it).
_CHILD = (
    "import sys\nfrom mnist_edge.runtime.guard.child import serve\nserve(int(sys.argv[1]), int(sys.argv[2]))"
)


@dataclass(frozen=True)
class Trial:
    """The result of loading and running one model in the child."""

    outcome: str
    detail: str = ""
    #: Exception type for "refused"/"error"; signal name for "crashed".
    kind: str = ""
    seconds: float = 0.0
    #: The child's peak resident memory so far, in bytes (0 if it did not answer).
    peak_rss: int = 0

    @property
    def ok(self) -> bool:
        """Loaded and ran correctly, or was refused with ModelLoadError: what a good runtime does."""
        return self.outcome == "ran" or (self.outcome == "refused" and self.kind == "ModelLoadError")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox:
    """A child process that loads model bytes and runs them under limits; restarted when it dies.

    >>> with Sandbox() as box:
    ...     trial = box.trial("model.int8.tflite", data)
    """

    def __init__(
        self, *, memory_bytes: int = DEFAULT_MEMORY_BYTES, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.memory_bytes = memory_bytes
        self.timeout = timeout
        self.started = 0  # child processes started, for the statistics
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()  # the child's loop ends at EOF
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            _close(proc.stdout)
        _close(self._stderr)
        self._stderr = None

    def trial(self, name: str, data: bytes, backend: str | None = None) -> Trial:
        """Load ``data`` as the model file ``name`` (its suffix picks the engine) and run it."""
        proc = self._child()
        header = json.dumps({"name": name, "backend": backend, "size": len(data)}).encode() + b"\n"
        start = time.perf_counter()
        try:
            assert proc.stdin is not None
            proc.stdin.write(header)
            proc.stdin.write(data)
            proc.stdin.flush()
        except (BrokenPipeError, ConnectionResetError):
            return self._dead(proc, time.perf_counter() - start)
        line = _read_line(proc, self.timeout)
        elapsed = time.perf_counter() - start
        if line is None:  # timed out: the child is stuck in the engine
            self._proc = None
            proc.kill()
            proc.wait()
            _close(proc.stdout)
            _close(proc.stdin)
            return Trial("timeout", f"no answer within {self.timeout:g} s", seconds=elapsed)
        if not line:
            return self._dead(proc, elapsed)
        answer = json.loads(line)
        return Trial(
            answer["outcome"],
            answer.get("detail", ""),
            answer.get("kind", ""),
            answer.get("seconds", elapsed),
            answer.get("peak_rss", 0),
        )

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        _close(self._stderr)
        self._stderr = tempfile.TemporaryFile(prefix="mnist-edge-sandbox-")  # noqa: SIM115 - lives with the child
        root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")  # one thread, and no per-thread buffers eating the address space
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        cpu_seconds = int(self.timeout) + 5  # a backstop: the parent's wall-clock timeout comes first
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(self.memory_bytes), str(cpu_seconds)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
        except OSError as exc:
            # The interpreter cannot be started again from inside this process: an embedded
            # Python, or one run through an emulator (qemu-user) that the kernel cannot exec.
            raise ModelLoadError(
                f"cannot start the isolated loader: running {sys.executable or 'the Python interpreter'} "
                f"failed ({exc.strerror or exc}). A file from elsewhere is trial-loaded in that child "
                "first: use the model with the manifest `mnist-edge export` wrote beside it, or load "
                "it on a machine where this Python can start itself"
            ) from None
        self.started += 1
        return self._proc

    def _dead(self, proc: subprocess.Popen[bytes], elapsed: float) -> Trial:
        """The child died during a trial: say how, with the end of what it wrote to stderr."""
        self._proc = None
        code = proc.wait()
        _close(proc.stdout)
        _close(proc.stdin)
        tail = ""
        if self._stderr is not None:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            tail = self._stderr.read().decode(errors="replace").strip()
        if code < 0:
            name = _signal_name(-code)
            return Trial("crashed", tail, kind=name, seconds=elapsed)
        return Trial("died", f"exit code {code}: {tail}", kind=str(code), seconds=elapsed)


def check_isolated(
    path: Path,
    data: bytes,
    backend: str,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Load and run ``data`` once in a limited child; raise ModelLoadError unless that went well."""
    with Sandbox(memory_bytes=memory_bytes, timeout=timeout) as box:
        trial = box.trial(path.name, data, backend)
    if trial.outcome == "ran":
        return
    refuse = f"{path} was not loaded: in an isolated test run"
    if trial.outcome == "refused":
        raise ModelLoadError(trial.detail)
    if trial.outcome == "crashed":
        raise ModelLoadError(
            f"{refuse} it crashed the {backend} engine ({trial.kind}) or ran out of the "
            f"{memory_bytes / 2**30:g} GiB memory limit; the file is corrupt or hostile"
        )
    if trial.outcome == "timeout":
        raise ModelLoadError(
            f"{refuse} it did not finish within {timeout:g} s: the file is corrupt or hostile"
        )
    if trial.outcome == "memory":
        raise ModelLoadError(f"{refuse} it needed more than {memory_bytes / 2**30:g} GiB of memory")
    raise ModelLoadError(f"{refuse} it failed ({trial.outcome}: {trial.kind} {trial.detail[:300]})")


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """One line from the child's stdout; b"" at EOF, None after ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            chunks.append(chunk)
            if chunk.endswith(b"\n"):  # the child writes one line and waits for the next request
                return b"".join(chunks)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()
