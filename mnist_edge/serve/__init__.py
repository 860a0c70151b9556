"""Serve a model over HTTP: the Open Inference Protocol (KServe V2 REST, with Triton's binary tensor
extension), ``POST /predict`` for pictures and pixels, and a draw-a-digit page.

Needs the ``serve`` extra (``pip install 'mnist-edge[serve]'``: Starlette and uvicorn). Importing
this package costs nothing: the web stack is imported by :func:`create_app` and :func:`run`.

>>> from mnist_edge.serve import ServeConfig, run
>>> run(ServeConfig(Path("artifacts/model.int8.tflite")))     # http://127.0.0.1:8000/

``oip`` (the protocol codec) and ``inputs`` (the /predict bodies) need no web framework.
"""

from __future__ import annotations

from typing import Any

from mnist_edge.serve.server import (
    DEFAULT_MAX_BODY,
    DEFAULT_THREADS,
    ServeConfig,
    exposure_warning,
    load_model,
    require_serve_extra,
    run,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_THREADS",
    "ServeConfig",
    "create_app",
    "exposure_warning",
    "load_model",
    "require_serve_extra",
    "run",
]


def create_app(
    classifier: Any, *, name: str = "mnist", threads: int = DEFAULT_THREADS, max_body: int = DEFAULT_MAX_BODY
) -> Any:
    """The ASGI app serving ``classifier`` (a loaded :class:`~mnist_edge.runtime.Classifier`) as
    ``name``, for any ASGI server; see :func:`mnist_edge.serve.app.create_app`."""
    require_serve_extra()
    from mnist_edge.serve.app import create_app as _create_app

    return _create_app(classifier, name=name, threads=threads, max_body=max_body)
