"""Crash-safe file writing and hashing, shared by every module that writes to disk.

A reader must only ever see the previous file or the complete new one: we write to a temp file in
the same folder (same filesystem, so ``os.replace`` is atomic), fsync, then rename. Temp names
carry a fixed marker and the writer's process id, so a later run can sweep up the ones a SIGKILL
left behind without touching the temp file of a writer that is still running.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_MARKER = ".mnist-edge-tmp-"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files do not sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sweep_stale_temps(folder: str | os.PathLike[str], final_name: str | None = None) -> int:
    """Remove temp files an interrupted writer left in ``folder``; returns how many went.

    Only temps whose writer is gone are removed: the process id in the name is dead, the name has
    none (an older mnist-edge), or the file is older than :data:`STALE_AFTER_SECONDS` (a recycled
    process id). ``final_name`` limits the sweep to the temps of that one file.
    """
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    pattern = f".{glob.escape(final_name)}{TMP_MARKER}*" if final_name else f"*{TMP_MARKER}*"
    for leftover in folder.glob(pattern):
        if not _is_stale(leftover):
            continue
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


#: A temp file this old is stale even if a process with the id in its name is running.
STALE_AFTER_SECONDS = 24 * 3600


def _is_stale(temp: Path) -> bool:
    owner = temp.name.split(TMP_MARKER, 1)[1].split("-", 1)[0]
    if not owner.isdigit():
        return True
    try:
        if time.time() - temp.stat().st_mtime > STALE_AFTER_SECONDS:
            return True
    except OSError:
        return False  # gone already
    pid = int(owner)
    if pid == os.getpid():
        return False  # another thread of this process may be writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, owned by someone else
        return False
    return False


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to ``final``; on success it is fsynced and renamed over ``final``.

    For writers that insist on a filename (Keras ``model.save``, converters). On any exception,
    KeyboardInterrupt included, the temp file is removed and ``final`` is untouched. Stale temps
    of ``final`` from a killed writer are swept first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final.parent, final.name)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}{TMP_MARKER}{os.getpid()}-", suffix=final.suffix, dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the final file the mode a plain open() would have.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``final`` so a crash leaves the old file or the new one, never half."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(final: str | os.PathLike[str], payload: Any) -> None:
    """Indented JSON with a trailing newline, written atomically: every JSON file the toolkit leaves."""
    atomic_write_bytes(final, (json.dumps(payload, indent=2) + "\n").encode("utf-8"))


def atomic_write_with(final: str | os.PathLike[str], writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(final) as tmp:
        writer(tmp)


def writable_folder(
    folder: str | os.PathLike[str],
    *,
    what: str = "folder",
    error: type[Exception] | None = None,
    create: bool = True,
) -> Path:
    """``folder``, made if missing, once a file has been created in it: the one check of an output
    folder (root passes every permission check and can still be refused, e.g. under /proc).
    Raises ``error`` (default :class:`~mnist_edge.errors.MnistEdgeError`) with one clear line,
    ``what`` naming the folder in it ("--out folder"). ``create=False`` makes nothing: a missing
    folder's nearest existing parent is checked instead (for a check before any work)."""
    from mnist_edge.errors import MnistEdgeError

    error = error or MnistEdgeError
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise error(f"{what} {folder} is a file, not a folder")
    probe = folder
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise error(f"cannot create {what} {folder}: {exc.strerror or exc}") from None
    else:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise error(f"cannot create {what} {folder}: {probe} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        where = folder if probe == folder else f"{folder} (in {probe})"
        raise error(f"cannot write in {what} {where}: {exc.strerror or exc}") from None
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. Windows), hence best-effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
