"""Run the app with uvicorn: load the model, bind, answer until SIGTERM or Ctrl-C.

One process, one event loop (uvloop and the httptools parser when installed, which the ``serve``
extra brings) and a small thread pool for decoding and inference, all sharing one classifier; or,
with ``workers`` > 1, that many such processes forked onto the one socket
(:mod:`~mnist_edge.serve.workers`). On SIGTERM/SIGINT uvicorn stops accepting connections, answers
the requests in flight, then the app's pool is drained.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_edge.errors import MnistEdgeError

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_THREADS", "ServeConfig", "exposure_warning", "load_model", "run"]

#: How long a shutdown waits for requests in flight before it closes their connections.
GRACEFUL_SECONDS = 30
#: Bodies over this are refused with 413: a JSON batch of 1,024 digits is about 2.5 MiB.
DEFAULT_MAX_BODY = 16 << 20
#: Threads that decode requests and run the model.
DEFAULT_THREADS = 2
#: Worker processes one server may fork (each holds its own copy of the engine).
MAX_WORKERS = 64
#: How long a thread may hold the GIL while another waits for it (Python's default is 5 ms).
SWITCH_INTERVAL = 0.001


@dataclass(frozen=True)
class ServeConfig:
    model: Path
    host: str = "127.0.0.1"
    port: int = 8000
    name: str = "mnist"
    threads: int = DEFAULT_THREADS
    max_body: int = DEFAULT_MAX_BODY
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model": str(self.model)}


def require_serve_extra() -> None:
    """A one-line error instead of an ImportError when the ``serve`` extra is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MnistEdgeError(
            f"serving needs {exc.name or 'the serve extra'}: pip install 'mnist-edge[serve]'"
        ) from None


def exposure_warning(host: str) -> str | None:
    """What to tell the user when ``host`` makes the server reachable from other machines."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a host name: it may resolve to anything
        return None if host == "localhost" else f"{host} may be reachable from other machines"
    if address.is_loopback:
        return None
    where = "every network interface" if address.is_unspecified else host
    return (
        f"listening on {where}: anyone who can reach this machine can use the model "
        "(there is no authentication); use --host 127.0.0.1 to keep it local"
    )


def load_model(path: Path, threads: int = 1) -> Any:
    """Load ``path`` as ``mnist-edge predict`` does: hash gate and pre-checks, and a file without
    a manifest is tried in an isolated child process first."""
    from mnist_edge.manifest import read_manifest
    from mnist_edge.runtime import load

    return load(path, threads=threads, isolate=read_manifest(path) is None and path.suffix != ".keras")


def run(
    config: ServeConfig,
    *,
    classifier: Any = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until stopped. ``classifier`` defaults to loading ``config.model``."""
    require_serve_extra()
    import uvicorn

    from mnist_edge.serve.app import create_app

    if not 0 <= config.port <= 65535:
        raise MnistEdgeError(f"--port must be 0..65535, got {config.port}")
    if not 1 <= config.workers <= MAX_WORKERS:
        raise MnistEdgeError(f"--workers must be 1..{MAX_WORKERS}, got {config.workers}")
    if config.workers > 1 and not (hasattr(os, "fork") and hasattr(socket, "SO_REUSEPORT")):
        raise MnistEdgeError("--workers needs fork() and SO_REUSEPORT (Linux): serve with --workers 1")
    # Pillow warns of pictures over ~89 M pixels as it opens them; images.load_image refuses
    # them anyway (its limit is lower), so in a server the warning would only fill the log.
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # The event loop needs the GIL for a moment per read and write, while the workers hold it for
    # most of a picture's decoding and fitting: at Python's default switch interval the loop waits
    # up to 5 ms each time, and that convoy, not the CPU, bounded throughput.
    sys.setswitchinterval(SWITCH_INTERVAL)
    owned = classifier is None
    if classifier is None:
        classifier = load_model(config.model)
    app = create_app(classifier, name=config.name, threads=config.threads, max_body=config.max_body)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="auto",  # uvloop when installed
        http="auto",  # httptools when installed
        lifespan="on",
        access_log=False,
        # No logging set-up of uvicorn's own (handlers bound to the stderr of the moment): its
        # warnings (a malformed HTTP request, say) reach stderr through Python's last-resort handler.
        log_config=None,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        # Slow or idle clients hold a connection, not a thread; close idle keep-alives soon.
        timeout_keep_alive=5,
    )
    forked = config.workers > 1
    # Worker processes each listen on a socket of their own on the one port (SO_REUSEPORT): the
    # kernel spreads new connections over them, where on one shared socket the first worker to
    # wake takes a whole burst of them, and with keep-alive clients their requests ever after.
    # The parent's socket then only reserves the port (bound, never listening).
    sock = _bind(config.host, config.port, listen=not forked, reuse_port=forked)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    processes = f" in {config.workers} worker processes" if forked else ""

    def ready() -> None:
        announce(
            f"serving {config.model.name} ({classifier.backend}, {classifier.precision}) as "
            f"{config.name!r} on http://{host}:{port}/{processes}  (Ctrl-C to stop)"
        )

    def serve(listening: socket.socket) -> None:
        # uvicorn stops on SIGINT/SIGTERM once every request in flight is answered, then raises
        # the signal again for whoever handled it before: here, a normal return (exit code 0).
        main = threading.current_thread() is threading.main_thread()  # signals reach it only
        previous = signal.signal(signal.SIGTERM, _stopped) if main else None
        try:
            uvicorn.Server(uv_config).run(sockets=[listening])
        except (_Stopped, KeyboardInterrupt):
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)

    try:
        if forked:
            from mnist_edge.serve.workers import serve_forked

            serve_forked(config.workers, lambda: _bind(config.host, port, reuse_port=True), serve, ready)
        else:
            ready()
            serve(sock)
    finally:
        sock.close()
        if owned:
            classifier.close()


class _Stopped(Exception):
    """SIGTERM arrived (and uvicorn has shut down gracefully)."""


def _stopped(_signum: int, _frame: object) -> None:
    raise _Stopped


def _bind(host: str, port: int, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    """A bound socket (uvicorn listens on it): a bind failure is one clear error, and port 0
    gets a free port that can be announced. ``reuse_port`` (SO_REUSEPORT): other sockets of this
    user may bind the port too, and the kernel spreads connections over those listening."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise MnistEdgeError(f"cannot listen on {host!r}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        # Listening before the announcement: a client that reads it and connects at once is
        # queued by the kernel while the app starts, not refused.
        if listen:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise MnistEdgeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server using the port?)"
        ) from None
    sock.set_inheritable(True)
    return sock
