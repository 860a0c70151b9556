"""The manifest: the JSON contract between ``export`` (which writes it) and ``runtime`` (which reads it).

It sits beside every artifact as ``<artifact>.json`` (``model.int8.tflite.json``) and says everything
the runtime must not guess: the input's dtype and quantisation, the class names, the file's sha256.
This module is the only place that reads, writes or validates it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge.errors import ModelLoadError

SCHEMA_VERSION = 1
FORMATS = ("tflite", "onnx", "c")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")
DTYPES = ("float32", "float16", "uint8", "int8")
#: What a model's output means: ``probabilities`` (it ends in a softmax) or ``logits`` (the runtime
#: applies the softmax). Manifests written before the field existed leave it out: then the runtime
#: tells the two apart from the outputs, as it does for a file without a manifest.
OUTPUT_KINDS = ("probabilities", "logits")
#: The file suffixes of exported artifacts (what verify and benchmark look for beside a model).
ARTIFACT_SUFFIXES = (".tflite", ".onnx")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``scale``/``zero_point`` are set only for quantised tensors:
    real_value = (quantised - zero_point) * scale."""

    name: str
    shape: tuple[int | None, ...]  # None marks a dynamic (batch) dimension
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        dtype = str(data["dtype"])
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        scale = data.get("scale")
        zero_point = data.get("zero_point")
        if (scale is None) != (zero_point is None):
            raise ValueError("scale and zero_point must be given together")
        if scale is not None and not float(scale) > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return cls(
            name=str(data["name"]),
            shape=tuple(None if d is None else int(d) for d in data["shape"]),
            dtype=dtype,
            scale=None if scale is None else float(scale),
            zero_point=None if zero_point is None else int(zero_point),
        )


@dataclass(frozen=True)
class Manifest:
    format: str
    precision: str
    input: TensorSpec
    output: TensorSpec
    class_names: tuple[str, ...]
    sha256: str
    size_bytes: int
    #: How float input is made from uint8 pixels: ``pixels * input_scale`` (1/255, the tutorial's).
    preprocessing: dict[str, Any] = field(
        default_factory=lambda: {"divide_by": PIXEL_SCALE, "description": "float32 pixels / 255"}
    )
    source_model_sha256: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    #: What the file answered on the runtime's probe images when it was exported
    #: (``runtime/known_answers.py``); ``load()`` checks it. Older manifests have none.
    known_answers: dict[str, Any] | None = None
    #: The device bundle exported beside the file (``parity/bundle.py``): file name, sha256, size.
    device_bundle: dict[str, Any] | None = None
    #: Set for an artifact generated from another (the C source from the int8 .tflite): that file's
    #: name and sha256 and the generator's options, so that verify can regenerate and compare.
    generated_from: dict[str, Any] | None = None
    #: "probabilities" or "logits" (:data:`OUTPUT_KINDS`); None in manifests older than the field.
    output_kind: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input"] = self.input.to_dict()
        data["output"] = self.output.to_dict()
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Validate and build; raises ``ValueError`` naming the first bad field."""
        if not isinstance(data, dict):
            raise ValueError("manifest must be a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r} is not supported (this mnist-edge reads "
                f"{SCHEMA_VERSION}); re-run `mnist-edge export` or upgrade mnist-edge"
            )
        try:
            fmt, precision = data["format"], data["precision"]
            if fmt not in FORMATS:
                raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
            if precision not in PRECISIONS:
                raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
            output_kind = data.get("output_kind")
            if output_kind is not None and output_kind not in OUTPUT_KINDS:
                raise ValueError(f"output_kind {output_kind!r} is not one of {', '.join(OUTPUT_KINDS)}")
            class_names = tuple(str(n) for n in data["class_names"])
            sha = str(data["sha256"])
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ValueError("sha256 must be 64 lowercase hex digits")
            return cls(
                format=fmt,
                precision=precision,
                input=TensorSpec.from_dict(data["input"]),
                output=TensorSpec.from_dict(data["output"]),
                class_names=class_names,
                sha256=sha,
                size_bytes=int(data["size_bytes"]),
                preprocessing=dict(data.get("preprocessing") or {}),
                source_model_sha256=data.get("source_model_sha256"),
                versions=dict(data.get("versions") or {}),
                calibration=data.get("calibration"),
                parity=data.get("parity"),
                known_answers=_optional_dict(data, "known_answers"),
                device_bundle=_optional_dict(data, "device_bundle"),
                generated_from=_optional_dict(data, "generated_from"),
                output_kind=output_kind,
                created_at=str(data.get("created_at", "")),
                schema_version=int(version),
            )
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"malformed field: {exc}") from None

    def replace(self, **changes: Any) -> Manifest:
        return dataclasses.replace(self, **changes)


def _optional_dict(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def manifest_path(artifact: str | os.PathLike[str]) -> Path:
    """``model.int8.tflite`` -> ``model.int8.tflite.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def read_manifest(artifact: str | os.PathLike[str]) -> Manifest | None:
    """The manifest beside ``artifact``, or None if there is none. A broken one is an error."""
    path = manifest_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.from_dict(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ModelLoadError(
            f"manifest {path} is unreadable: {exc}; re-run `mnist-edge export` or delete it"
        ) from None


def write_manifest(artifact: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write the manifest beside ``artifact`` atomically; returns its path."""
    from mnist_edge._files import atomic_write_bytes

    path = manifest_path(artifact)
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
