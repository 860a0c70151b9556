"""A pre-warmed ``mnist-edge`` launcher for the SIGKILL tests: imports TensorFlow once, then forks
one child per command line, so twenty killed runs cost seconds instead of twenty TensorFlow imports.

The child runs ``mnist_edge.cli.main()`` with the given argv: the very code path of the
``mnist-edge`` script, minus the import time. Protocol, one JSON object per line: the test writes
``{"argv": [...], "log": path}`` on stdin; the zygote answers ``{"pid": n}`` when the child starts
and ``{"pid": n, "exit": code, "signal": sig}`` when it has reaped it. Not a test module.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import traceback


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the protocol

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import tf2onnx  # noqa: F401

    import mnist_edge.cli
    import mnist_edge.export
    import mnist_edge.parity
    import mnist_edge.train
    from mnist_edge._heavy import keras, tensorflow

    tensorflow()
    keras()
    proto.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: become `mnist-edge <argv>`
            code = 70
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                sys.argv = ["mnist-edge", *request["argv"]]
                try:
                    mnist_edge.cli.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    traceback.print_exc()
                    code = 1
                atexit._run_exitfuncs()  # what a normal exit does (TensorFlow removes its temp files)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        proto.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        proto.write(
            json.dumps(
                {
                    "pid": pid,
                    "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
