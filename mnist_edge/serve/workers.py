"""Several worker processes on one listening socket: the pre-fork model.

Why: a picture's decoding and fitting is many small numpy calls that hold the GIL, so one process
answers pictures at about the speed of one core however many threads it has (more threads only
contend for the lock). Worker processes each have their own interpreter and GIL. They are forked
after the model is loaded, so each starts from the already verified classifier (the engines run
single-threaded here: no engine threads for a fork to lose), and each listens on a socket of its
own on the one port (SO_REUSEPORT), over which the kernel spreads the connections. The server is
announced once every worker listens.

The parent only supervises: SIGTERM or SIGINT is passed on to every worker, each answers its
requests in flight and exits; a worker that dies on its own stops the others and the parent
reports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from mnist_edge.errors import MnistEdgeError

__all__ = ["serve_forked"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve_forked(
    workers: int,
    listen: Callable[[], socket.socket],
    serve: Callable[[socket.socket], None],
    ready: Callable[[], None],
) -> None:
    """Fork ``workers`` processes, each running ``serve(listen())``, a blocking server on a
    listening socket of its own; call ``ready()`` once all of them listen; return after a stop
    signal, or raise MnistEdgeError if a worker dies by itself."""
    children: set[int] = set()
    stopping = False

    def stop(_signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    failure: str | None = None
    listening, told = os.pipe()
    try:
        for _ in range(workers):
            pid = os.fork()
            if pid == 0:
                os.close(listening)
                _worker(previous, listen, serve, told)  # never returns
            children.add(pid)
        os.close(told)
        told = -1
        failure = _await_listening(listening, workers)
        if stopping:  # stopped while starting: the workers' early exit is no failure
            failure = None
        elif failure is None:
            ready()
        else:
            stop()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and not stopping:
                failure = f"a worker process ({pid}) exited with {_describe(code)}"
                stop()
    finally:
        for fd in (listening, told):
            if fd >= 0:
                os.close(fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure:
        raise MnistEdgeError(f"{failure}; the server stopped")


def _await_listening(pipe: int, workers: int) -> str | None:
    """Read one byte per worker that listens; None when all did, else what went wrong (the pipe
    closes early when a worker exits first)."""
    received = 0
    while received < workers:
        chunk = os.read(pipe, workers - received)  # a stop signal meanwhile: read goes on (PEP 475)
        if not chunk:
            return f"{workers - received} of {workers} worker processes could not listen"
        received += len(chunk)
    return None


def _worker(
    previous: dict[int, Any],
    listen: Callable[[], socket.socket],
    serve: Callable[[socket.socket], None],
    told: int,
) -> None:
    """A forked worker: the signal handlers the server had before the fork, its own listening
    socket (one byte down the pipe says so), then serve; exit without running the parent's
    clean-up (atexit hooks, finally blocks above the fork)."""
    code = 0
    try:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock = listen()
        os.write(told, b"1")
        os.close(told)
        serve(sock)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # a worker must never return into the parent's code
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
