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
- :func:`quiet_terminal` is for a command line run: Python's ``sys.stderr`` moves to a copy of
  fd 2 (the toolkit's own lines, warnings, progress bars and tracebacks still show) and fd 2
  itself goes to ``/dev/null`` until the run ends.

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
    "quiet_tensorflow_logs",
    "quiet_terminal",
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
def silenced_native_stderr() -> Iterator[int | None]:
    """fd 2 points at /dev/null inside the block (unless verbose), and back afterwards. Yields a
    file descriptor that still reaches the real stderr (for a progress bar), or None if there is
    no stderr at all."""
    global _depth, _saved_fd
    if verbose():
        yield _real_fd()
        return
    with _lock:
        if _depth == 0:
            _saved_fd = _redirect_to_devnull()
        _depth += 1
    try:
        yield _process[0] if _process is not None else _saved_fd
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                with contextlib.suppress(OSError):
                    os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


@contextlib.contextmanager
def quiet_terminal() -> Iterator[None]:
    """For a whole command line run: native code's fd 2 goes to /dev/null while Python's
    ``sys.stderr`` (the toolkit's lines, warnings, progress bars, tracebacks) keeps the real
    stderr, through a copy of it. Undone at the end, or from inside by :func:`loud_again`
    (``--verbose``). When ``sys.stderr`` does not write to fd 2 (a test harness capturing it),
    it is left alone and only fd 2 is redirected."""
    global _process
    if verbose() or _process is not None:
        yield
        return
    quiet_tensorflow_logs()
    saved = _redirect_to_devnull()
    if saved is None:
        yield
        return
    previous = sys.stderr
    _process = (saved, previous)
    if _writes_to_fd2(previous):
        encoding = getattr(previous, "encoding", None) or "utf-8"
        # Lives until loud_again() closes it: not a with-block.
        sys.stderr = open(  # noqa: SIM115
            saved, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False
        )
    try:
        yield
    finally:
        loud_again(keep_quiet_children=True)


def loud_again(*, keep_quiet_children: bool = False) -> None:
    """Undo :func:`quiet_terminal` and let everything through from now on (``--verbose``; child
    processes are told too, unless ``keep_quiet_children``)."""
    global _process
    if not keep_quiet_children:
        os.environ[VERBOSE_ENV] = "1"
    if _process is None:
        return
    saved, previous = _process
    _process = None
    if sys.stderr is not previous:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            sys.stderr.close()
        sys.stderr = previous
    with contextlib.suppress(OSError):
        os.dup2(saved, 2)
    os.close(saved)


def _real_fd() -> int | None:
    if _process is not None:
        return _process[0]
    try:
        os.fstat(2)
    except OSError:
        return None
    return 2


def _writes_to_fd2(stream: object) -> bool:
    try:
        return stream is not None and stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


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
