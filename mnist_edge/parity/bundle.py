"""The device bundle: what a device needs to run the parity gate without TensorFlow or the dataset.

A device (a Raspberry Pi, a gateway) has the runtime-only install: no TensorFlow to run the Keras
reference, no MNIST download chain. The bundle carries both halves of the comparison instead: the
test digits with their labels and the Keras reference's probabilities on them, computed once on the
export machine. Export writes it beside the artifacts (:data:`BUNDLE_NAME`) and records its sha256
in every artifact's manifest; ``mnist-edge verify`` uses it when TensorFlow is absent or
``--bundle`` is given, with the same tolerances, report and exit codes as against the live model.

The file is a compressed ``.npz`` of plain arrays (read with ``allow_pickle=False``): ``images``
uint8 (N, 28, 28), ``labels`` uint8 (N,), ``probs`` float32 (N, 10) - float32 because the fp32
tolerance (1e-4) is finer than float16's steps near 1 - and ``meta``, UTF-8 JSON bytes. Its
members carry a fixed timestamp, so the same outputs always give the same bytes and sha256.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge import __version__
from mnist_edge._files import atomic_write_bytes, sha256_bytes
from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES
from mnist_edge.errors import DataError
from mnist_edge.parity.metrics import Reference

__all__ = [
    "BUNDLE_NAME",
    "DeviceBundle",
    "bundle_path",
    "locate_bundle",
    "pack_bundle",
    "parse_bundle",
    "read_bundle",
    "write_bundle",
]

BUNDLE_NAME = "model.bundle.npz"
BUNDLE_SCHEMA = 1
#: A bundle of the full test set is about 2 MB; anything far larger is not one of ours.
MAX_BUNDLE_BYTES = 64 << 20
#: Limit on the members' unpacked size, checked before inflating: a small zip can unpack to gigabytes.
MAX_UNPACKED_BYTES = 256 << 20
_MEMBERS = ("images", "labels", "probs", "meta")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DeviceBundle:
    """A bundle read from disk (or just written): the arrays and where they came from."""

    path: Path
    sha256: str
    size_bytes: int
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # int64 (N,)
    probs: np.ndarray  # float32 (N, 10): the Keras reference's outputs
    source_model_sha256: str
    meta: dict[str, Any]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, limit: int | None) -> DeviceBundle:
        """The first ``limit`` images only (all for None): a quicker, coarser check."""
        if limit is None or limit >= len(self):
            return self
        if limit < 1:
            raise DataError(f"--limit must be at least 1, got {limit}")
        return dataclasses.replace(
            self, images=self.images[:limit], labels=self.labels[:limit], probs=self.probs[:limit]
        )

    def reference(self) -> Reference:
        """The Keras reference as verify uses it, from the stored outputs (its sha256 is the model's)."""
        return Reference.of(str(self.path), self.source_model_sha256, self.probs, self.labels, 0.0)

    def manifest_entry(self) -> dict[str, Any]:
        """What each artifact's manifest records about the bundle exported beside it."""
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "images": len(self),
        }


def bundle_path(folder: str | os.PathLike[str]) -> Path:
    """Where export writes the bundle for the artifacts in ``folder``."""
    return Path(folder) / BUNDLE_NAME


def locate_bundle(
    artifacts: Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str],
    given: str | os.PathLike[str] | None,
) -> Path:
    """The bundle to verify ``artifacts`` with: ``given``, else the one beside the first artifact,
    else the one beside ``model``. Raises :class:`~mnist_edge.errors.DataError` saying where to get one."""
    if given is not None:
        return Path(given)
    folders = [Path(a).parent for a in artifacts[:1]] + [Path(model).parent]
    for folder in dict.fromkeys(folders):
        if bundle_path(folder).is_file():
            return bundle_path(folder)
    where = " or ".join(str(f) for f in dict.fromkeys(folders))
    raise DataError(
        f"no device bundle ({BUNDLE_NAME}) in {where}: copy the one `mnist-edge export` wrote beside the "
        "artifacts, or pass --bundle"
    )


def write_bundle(
    path: str | os.PathLike[str], reference: Reference, images: np.ndarray, *, data_source: str = ""
) -> DeviceBundle:
    """Write ``reference``'s outputs on ``images`` (uint8 pixels) as a bundle, atomically."""
    data = pack_bundle(reference, images, data_source=data_source)
    atomic_write_bytes(path, data)
    return parse_bundle(Path(path), data)


def pack_bundle(reference: Reference, images: np.ndarray, *, data_source: str = "") -> bytes:
    """The bytes of a bundle of ``reference``'s outputs on ``images``, to write later."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(reference.labels).astype(np.uint8)
    meta = {
        "schema_version": BUNDLE_SCHEMA,
        "source_model_sha256": reference.sha256,
        "reference": Path(reference.path).name,
        "reference_accuracy": reference.accuracy,
        "images": len(labels),
        "data": data_source,
        "mnist_edge_version": __version__,
    }
    arrays = {
        "images": images,
        "labels": labels,
        "probs": np.ascontiguousarray(reference.probs, dtype=np.float32),
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            # zlib's default level: the highest is barely smaller on these digits and many times slower.
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def read_bundle(path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> DeviceBundle:
    """Read and validate a bundle; raises :class:`~mnist_edge.errors.DataError` saying what to do."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(
            f"device bundle {path} does not exist: copy {BUNDLE_NAME} from the folder `mnist-edge export` "
            "wrote, or re-run export"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read device bundle {path}: {exc.strerror}") from None
    if size > MAX_BUNDLE_BYTES:
        raise DataError(f"{path} is {size >> 20} MiB: not a device bundle (they are about 2 MB)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read device bundle {path}: {exc.strerror}") from None
    bundle = parse_bundle(path, data)
    if expected_sha256 is not None and bundle.sha256 != expected_sha256:
        raise DataError(
            f"device bundle {path} (sha256 {bundle.sha256[:12]}) is not the one exported with the "
            f"artifacts (their manifests say {expected_sha256[:12]}): copy the bundle from the same "
            "export, or re-run export"
        )
    return bundle


def parse_bundle(path: Path, data: bytes) -> DeviceBundle:
    """Validate a bundle's bytes (read from, or to be written to, ``path``)."""
    redo = "copy it again from the export machine, or re-run `mnist-edge export`"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            missing = [m for m in _MEMBERS if f"{m}.npy" not in infos]
            if missing:
                raise ValueError(f"it has no {', '.join(missing)}")
            if sum(info.file_size for info in infos.values()) > MAX_UNPACKED_BYTES:
                raise ValueError(f"it unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
            arrays = {
                m: np.lib.format.read_array(io.BytesIO(archive.read(f"{m}.npy")), allow_pickle=False)
                for m in _MEMBERS
            }
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("its meta is not a JSON object")
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"device bundle {path} is corrupt ({exc}); {redo}") from None
    images, labels, probs = arrays["images"], arrays["labels"], arrays["probs"]
    n = len(labels) if labels.ndim else 0
    problems = []
    if meta.get("schema_version") != BUNDLE_SCHEMA:
        problems.append(f"schema_version {meta.get('schema_version')!r} is not {BUNDLE_SCHEMA}")
    if images.dtype != np.uint8 or images.shape != (n, *IMAGE_SHAPE):
        problems.append(f"images are {images.dtype} {images.shape}, not uint8 (N, 28, 28)")
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or n == 0 or labels.max() >= NUM_CLASSES:
        problems.append("labels are not N digits 0-9")
    if probs.dtype != np.float32 or probs.shape != (n, NUM_CLASSES) or not np.isfinite(probs).all():
        problems.append(f"probs are {probs.dtype} {probs.shape}, not finite float32 (N, 10)")
    source = meta.get("source_model_sha256")
    if not isinstance(source, str) or len(source) != 64:
        problems.append("it does not name its source model's sha256")
    if problems:
        raise DataError(f"device bundle {path} is not usable: {'; '.join(problems)}; {redo}")
    return DeviceBundle(
        path=path,
        sha256=sha256_bytes(data),
        size_bytes=len(data),
        images=images,
        labels=labels.astype(np.int64),
        probs=probs,
        source_model_sha256=str(source),
        meta=meta,
    )
