"""Engines' and frameworks' own log lines stay off the terminal unless asked for.

TensorFlow, absl, the TFLite converter and LiteRT write from native code straight to file
descriptor 2, where Python cannot filter them: the CUDA probe (``cuda_platform.cc``,
``cudart_stub.cc``), ``cpu_feature_guard.cc``, ``All log messages before absl::InitializeLog()``,
the converter's ``fully_quantize: 0, inference_type: 6, ...``, ``node_def_util.cc`` and LiteRT's
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``. So the descriptor itself is redirected:

- :func:`silenced_native_stderr` points fd 2 at ``/dev/null`` for one block; the runtime wraps
  the creation of a LiteRT interpreter in it, so an app that embeds the runtime keeps a clean
  stderr. Nested and concurrent blocks share one redirection, restored when the last one ends;
  whatever another thread writes to fd 2 inside that short window is lost too.
- :func:`quiet_process` is for the command line: Python's ``sys.stderr`` moves to a copy of fd 2
  (the toolkit's own lines, warnings, progress bars and tracebacks still show) and fd 2 itself
  goes to ``/dev/null`` for the rest of the process.

``MNIST_EDGE_VERBOSE=1`` (what the CLI's ``--verbose`` sets) turns all of this off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = [
    "VERBOSE_ENV",
    "loud_again",
    "quiet_process",
    "quiet_tensorflow_logs",
    "silenced_native_stderr",
    "verbose",
]

#: Set to 1 to see every engine's and framework's own log lines.
VERBOSE_ENV = "MNIST_EDGE_VERBOSE"

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_process: tuple[int, TextIO] | None = None  # (copy of the real fd 2, the previous sys.stderr)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0")


def quiet_tensorflow_logs() -> None:
    """Before TensorFlow is imported: only its fatal C++ messages, and only its Python errors. A
    ``TF_CPP_MIN_LOG_LEVEL`` the user set is kept."""
    if verbose():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "h5py", "tf2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def silenced_native_stderr() -> Iterator[None]:
    """fd 2 points at /dev/null inside the block (unless verbose), and back afterwards."""
    global _depth, _saved_fd
    if verbose():
        yield
        return
    with _lock:
        if _depth == 0:
            _saved_fd = _redirect_to_devnull()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                with contextlib.suppress(OSError):
                    os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def quiet_process() -> None:
    """For the CLI's whole run: Python's stderr keeps the terminal, native code's fd 2 does not.
    Undone by :func:`loud_again` (``--verbose``)."""
    global _process
    if verbose() or _process is not None:
        return
    quiet_tensorflow_logs()
    saved = _redirect_to_devnull()
    if saved is None:
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    stream = open(saved, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False)  # noqa: SIM115
    _process = (saved, sys.stderr)
    sys.stderr = stream


def loud_again() -> None:
    """Undo :func:`quiet_process` and let everything through from now on (``--verbose``)."""
    global _process
    os.environ[VERBOSE_ENV] = "1"  # child processes, and the checks above
    if _process is None:
        return
    saved, previous = _process
    _process = None
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    sys.stderr = previous
    with contextlib.suppress(OSError):
        os.dup2(saved, 2)
    os.close(saved)


def _redirect_to_devnull() -> int | None:
    """Point fd 2 at /dev/null; return a copy of what it was (None if there is no fd 2)."""
    with contextlib.suppress(Exception):
        if sys.stderr is not None:
            sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (some embedded hosts): nothing to silence
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    return saved
