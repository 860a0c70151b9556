"""The Open Inference Protocol (KServe V2 REST) codec, with Triton's binary tensor data extension.

Pure functions from request bytes to a batch of pixels and from probabilities to response bytes:
no web framework here, so the codec is tested on its own and the app stays a thin layer.

What a request may carry (anything else is a :class:`ApiError` naming the field):

* one input, ``pixels``, datatype ``UINT8`` (0..255) or ``FP32`` (0..1, the tutorial's ``x / 255``),
  shape ``[N, 28, 28]`` or ``[N, 784]``; its data as JSON (flat or nested, row-major) or, with the
  binary extension, as ``parameters.binary_data_size`` bytes after the JSON header, whose length the
  ``Inference-Header-Content-Length`` header gives;
* optional ``outputs`` naming ``probabilities`` (FP32 ``[N, 10]``) and/or ``label`` (INT64 ``[N]``),
  each with ``parameters.binary_data``; or ``parameters.binary_data_output`` for all of them
  (``tritonclient`` asks for binary outputs by default).

Binary tensors are little-endian, row-major, without padding, as the extension specifies.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES, PIXELS

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "ApiError",
    "InferRequest",
    "encode_response",
    "model_metadata",
    "parse_request",
    "strict_json",
]

INPUT_NAME = "pixels"
PROBABILITIES = "probabilities"
LABEL = "label"
OUTPUT_NAMES = (PROBABILITIES, LABEL)
#: The datatypes a client may send pixels in, as numpy dtypes (little-endian, as the extension says).
INPUT_DTYPES = {"UINT8": np.dtype("u1"), "FP32": np.dtype("<f4")}
#: Most images in one request; the body limit usually bites first.
MAX_BATCH = 65_536
_NOT_NUMBERS = re.compile(rb"NaN|Infinity")


class ApiError(Exception):
    """A request the server refuses: an HTTP status and a message that says what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InferRequest:
    """A decoded inference request: the pixels and how to answer."""

    pixels: np.ndarray  # (N, 28, 28) or (N, 784); uint8, or float32 in [0, 1]
    id: str | None
    outputs: tuple[tuple[str, bool], ...]  # (name, as binary) in the order the response lists them


def model_metadata(name: str, platform: str) -> dict[str, Any]:
    """``GET /v2/models/{name}``: what the model takes and returns."""
    return {
        "name": name,
        "versions": [],
        "platform": platform,
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, *IMAGE_SHAPE]}],
        "outputs": [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, NUM_CLASSES]},
            {"name": LABEL, "datatype": "INT64", "shape": [-1]},
        ],
    }


# --------------------------------------------------------------------------- requests


def strict_json(data: bytes, what: str = "the body") -> Any:
    """Parse JSON as RFC 8259 has it (UTF-8; no NaN or Infinity, which Python's json module would
    take; nesting up to orjson's 1,024 levels, checked without recursion); anything else is a 400
    that says where the parser stopped."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        hint = " (JSON has no NaN or Infinity: send numbers)" if _NOT_NUMBERS.search(data) else ""
        raise ApiError(400, f"{what} is not valid JSON: {exc}{hint}") from None


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode ``POST /v2/models/{name}/infer``: JSON, or a JSON header followed by binary tensors."""
    binary = b""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError:
            raise ApiError(
                400, f"Inference-Header-Content-Length must be an integer, got {header_length[:40]!r}"
            ) from None
        if not 0 < size <= len(body):
            raise ApiError(
                400,
                f"Inference-Header-Content-Length is {size} but the body has {len(body)} bytes: "
                "it must give the JSON header's length",
            )
        body, binary = body[:size], body[size:]
    try:
        request = strict_json(body, "the inference request")
    except ApiError as exc:
        if header_length is None and exc.status == 400:
            exc.message += " (binary tensors need the Inference-Header-Content-Length header)"
        raise
    if not isinstance(request, dict):
        raise ApiError(400, "the inference request must be a JSON object with an 'inputs' list")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(400, "'id' must be a string")
    params = _parameters(request, "the request")
    pixels = _input(request.get("inputs"), binary)
    return InferRequest(pixels, request_id, _outputs(request.get("outputs"), params))


def _input(inputs: Any, binary: bytes) -> np.ndarray:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ApiError(400, f"'inputs' must be a list of one tensor, named {INPUT_NAME!r}")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise ApiError(400, f"unknown input {tensor.get('name')!r}: this model's input is {INPUT_NAME!r}")
    datatype = tensor.get("datatype")
    dtype = INPUT_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise ApiError(
            400, f"input datatype {datatype!r} is not accepted: send {' or '.join(INPUT_DTYPES)} pixels"
        )
    shape = _shape(tensor.get("shape"))
    count = math.prod(shape)
    params = _parameters(tensor, f"input {INPUT_NAME!r}")
    size = params.get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise ApiError(400, "an input has either 'data' or parameters.binary_data_size, not both")
        if isinstance(size, bool) or not isinstance(size, int) or size != len(binary):
            raise ApiError(
                400,
                f"binary_data_size is {size!r} but {len(binary)} bytes follow the JSON header; "
                "they must agree",
            )
        if size != count * dtype.itemsize:
            raise ApiError(
                400,
                f"shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
                f"binary_data_size says {size}",
            )
        array = np.frombuffer(binary, dtype=dtype)
    else:
        if binary:
            raise ApiError(400, f"{len(binary)} bytes follow the JSON header but no input is binary")
        array = _json_data(tensor.get("data"), datatype, dtype)
        if array.size != count:
            raise ApiError(400, f"shape {shape} holds {count} values but 'data' has {array.size}")
    return array.reshape(shape)


def _shape(shape: Any) -> tuple[int, ...]:
    valid = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
    if not valid or len(shape) not in (2, 3):
        raise ApiError(400, f"input shape must be [N, 28, 28] or [N, 784], got {str(shape)[:80]}")
    if tuple(shape[1:]) not in (IMAGE_SHAPE, (PIXELS,)):
        raise ApiError(422, f"input shape {shape}: each image must be 28x28 (or 784 values)")
    if not 1 <= shape[0] <= MAX_BATCH:
        raise ApiError(422, f"a batch holds 1 to {MAX_BATCH:,} images, got {shape[0]}")
    return tuple(shape)


def _json_data(data: Any, datatype: str, dtype: np.dtype) -> np.ndarray:
    if not isinstance(data, list):
        raise ApiError(400, "input 'data' must be a JSON array of pixel values")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):  # ragged nesting, numbers past 64 bits
        raise ApiError(422, "input 'data' must be a rectangular array of numbers") from None
    array = array.reshape(-1)
    if datatype == "UINT8":
        if array.dtype.kind not in "iu":
            raise ApiError(422, f"UINT8 data must be integers 0..255, got {_kind(array)}")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ApiError(422, f"UINT8 pixels must be 0..255, got {array.min()}..{array.max()}")
        return array.astype(dtype)
    if array.dtype.kind not in "iuf":
        raise ApiError(422, f"FP32 data must be numbers in [0, 1], got {_kind(array)}")
    return array.astype(dtype)


def _kind(array: np.ndarray) -> str:
    names = {"b": "booleans", "f": "non-integer numbers", "U": "strings", "O": "mixed values"}
    return names.get(array.dtype.kind, f"{array.dtype} values")


def _outputs(requested: Any, params: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    binary_all = params.get("binary_data_output", False)
    if not isinstance(binary_all, bool):
        raise ApiError(400, "parameters.binary_data_output must be true or false")
    if requested is None:
        return tuple((name, binary_all) for name in OUTPUT_NAMES)
    if not isinstance(requested, list) or not requested:
        raise ApiError(400, f"'outputs' must be a non-empty list naming {' and/or '.join(OUTPUT_NAMES)}")
    outputs: list[tuple[str, bool]] = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in OUTPUT_NAMES:
            raise ApiError(400, f"unknown output {name!r}: this model has {', '.join(OUTPUT_NAMES)}")
        if any(name == seen for seen, _ in outputs):
            raise ApiError(400, f"output {name!r} is requested twice")
        binary = _parameters(item, f"output {name!r}").get("binary_data", binary_all)
        if not isinstance(binary, bool):
            raise ApiError(400, f"output {name!r}: parameters.binary_data must be true or false")
        outputs.append((name, binary))
    return tuple(outputs)


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    params = holder.get("parameters", {})
    if not isinstance(params, dict):
        raise ApiError(400, f"'parameters' of {where} must be a JSON object")
    return params


# --------------------------------------------------------------------------- responses


def encode_response(
    request: InferRequest, model_name: str, probabilities: np.ndarray
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary tensors follow it (for the
    Inference-Header-Content-Length header; None for a plain JSON body)."""
    n = probabilities.shape[0]
    tensors = {
        PROBABILITIES: ("FP32", [n, NUM_CLASSES], np.ascontiguousarray(probabilities, dtype="<f4")),
        LABEL: ("INT64", [n], probabilities.argmax(axis=1).astype("<i8")),
    }
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in request.outputs:
        datatype, shape, array = tensors[name]
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if binary:
            blob = array.tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = array.ravel()  # orjson writes numpy arrays itself
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
