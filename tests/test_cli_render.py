"""CLI output plumbing: engine chatter on fd 2 is silenced, the progress bar still reaches a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

_PROGRESS = """
import os
from mnist_edge.cli.render import progress_bar
with progress_bar() as progress:
    task = progress.add_task("working hard", total=2)
    os.write(2, b"NATIVE CHATTER\\n")
    progress.update(task, completed=1)
    progress.refresh()
os.write(2, b"AFTER THE BAR\\n")
"""


def _run_in_a_terminal(code: str) -> str:
    """Run ``python -c code`` with a pseudo-terminal as stdin, stdout and stderr; returns what it printed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.execv(sys.executable, [sys.executable, "-c", code])
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(not hasattr(pty, "fork"), reason="no pseudo-terminals on this platform")
def test_the_progress_bar_reaches_a_terminal_while_native_stderr_is_silenced():
    out = _run_in_a_terminal(_PROGRESS)
    assert "working hard" in out and "━" in out, out
    assert "NATIVE CHATTER" not in out
    assert "AFTER THE BAR" in out  # fd 2 is back once the bar is gone


def test_native_stderr_is_silenced_and_restored_without_a_terminal():
    code = (
        "import os\n"
        "from mnist_edge.cli.render import native_stderr_silenced\n"
        "with native_stderr_silenced() as real:\n"
        "    os.write(2, b'hidden\\n')\n"
        "    os.write(real, b'kept\\n')\n"
        "os.write(2, b'restored\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=True)
    assert done.stderr.split() == [b"kept", b"restored"]
