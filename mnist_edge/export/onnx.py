"""ONNX targets: float32 through tf2onnx, int8 through ONNX Runtime's static QDQ quantisation.

Why ``tf2onnx.convert.from_function`` on our own ``tf.function``: ``from_keras`` breaks on Keras 3
models (``KeyError: 'keras_tensor_...'``), and Keras's ``model.export(format="onnx")`` names the
input ``input_layer``, needs the model called once first and hides the opset. An explicit
``input_signature`` gives us stable I/O names (``pixels`` -> ``probabilities``), a dynamic batch
dimension, the opset the user asks for, and a plain ``ModelProto`` to hand to the quantiser.

The int8 model takes **uint8** input and gives uint8 output, like the int8 TFLite model: after
``quantize_static`` (QDQ, uint8 activations and per-channel uint8 weights) :func:`integer_io` cuts
the QuantizeLinear on the input and the DequantizeLinear on the output out of the graph. The input
QuantizeLinear must have scale ``float32(1/255)`` and zero point 0 - the calibration anchors (an
all-black and an all-white image) make the quantiser pick exactly that - so quantise(pixels / 255)
is the pixels themselves and an app feeds raw pixels, no arithmetic and no float copy. The output
is the quantised softmax; the manifest records its scale and zero point, read from the graph.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._heavy import tensorflow
from mnist_edge._heavy import tf2onnx as _tf2onnx
from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge.errors import ExportError
from mnist_edge.export._base import (
    FLOAT_PREPROCESSING,
    INPUT_NAME,
    INT8_PREPROCESSING,
    OUTPUT_NAME,
    ExportJob,
    Written,
)
from mnist_edge.export.static_shapes import static_shapes
from mnist_edge.manifest import TensorSpec
from mnist_edge.runtime.onnxrt import tensor_spec

#: A recent opset that onnxruntime >= 1.20 runs and tf2onnx 1.17 writes.
DEFAULT_OPSET = 17
#: The opsets tf2onnx 1.17 writes (``tf2onnx.constants.OPSET_TO_IR_VERSION``); checked before the
#: slow part so a bad ``--opset`` fails at once.
MIN_OPSET, MAX_OPSET = 13, 18
BATCH_DIM = "batch"
CALIBRATION_BATCH = 100

#: The int8 model's input quantisation: with it, QuantizeLinear(pixels / 255) == pixels for 0..255.
INPUT_SCALE = np.float32(1 / PIXEL_SCALE)
INPUT_ZERO_POINT = np.uint8(0)


def export_fp32(job: ExportJob, path: Path) -> Written:
    path.write_bytes(float_model(job).SerializeToString())
    model_input, model_output = read_io(path)
    return Written(input=model_input, output=model_output, preprocessing=dict(FLOAT_PREPROCESSING))


def export_int8(job: ExportJob, path: Path) -> Written:
    """Static 8-bit: per-channel uint8 weights, uint8 activations (QDQ), ranges from the calibration set."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    calibration = job.calibration_set()

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = calibration.batches(CALIBRATION_BATCH, job.per_image)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="mnist-edge-onnx-") as scratch:
        float_path, prepared = Path(scratch, "float.onnx"), Path(scratch, "prepared.onnx")
        quantized = Path(scratch, "quantized.onnx")
        float_path.write_bytes(float_model(job).SerializeToString())
        # Shape inference + graph clean-up first, as ONNX Runtime recommends before quantising.
        quant_pre_process(float_path, prepared)
        quantize_static(
            prepared,
            quantized,
            calibration_data_reader=Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            # uint8 activations AND weights (U8U8), not the S8S8 default: on x86 CPUs without VNNI
            # (AVX2 only) ONNX Runtime's int8 GEMM multiplies u8 x s8 with VPMADDUBSW, whose 16-bit
            # intermediate saturates. Measured on the tiny model (AVX2 machine, 10,000 test digits):
            # S8S8 agrees with Keras on 95.3 % of top-1, the same graph simulated in float on 99.1 %,
            # U8U8 on 99.1 %. U8U8 has no saturating path on any CPU.
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QUInt8,
        )
        proto = onnx.load(str(quantized))
    # The surgery happens in memory; ``path`` (a temp name renamed into place) is written once.
    output_scale, output_zero_point = integer_io(proto)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the int8 ONNX model with uint8 I/O fails the checker: {exc}") from None
    path.write_bytes(proto.SerializeToString())
    model_input, model_output = read_io(path)
    # ONNX Runtime does not report quantisation parameters; they come from the graph.
    model_input = dataclasses.replace(model_input, scale=float(INPUT_SCALE), zero_point=int(INPUT_ZERO_POINT))
    model_output = dataclasses.replace(model_output, scale=output_scale, zero_point=output_zero_point)
    return Written(input=model_input, output=model_output, preprocessing=dict(INT8_PREPROCESSING))


def integer_io(model: Any) -> tuple[float, int]:
    """Give a QDQ ``ModelProto`` uint8 input and output, in place; returns the output's
    ``(scale, zero_point)``.

    Input: ``pixels -> [Reshape/Flatten ->] QuantizeLinear -> ...`` loses the QuantizeLinear, so
    its consumers read the (reshaped) uint8 pixels. Only with scale ``float32(1/255)`` and zero
    point uint8 0, where quantise(pixels / 255) == pixels; anything else is an :class:`ExportError`
    (never a silent float input). Output: ``... -> QuantizeLinear -> DequantizeLinear ->
    probabilities`` loses the DequantizeLinear, so the QuantizeLinear writes ``probabilities``.
    Initializers nothing reads any more are dropped.
    """
    import onnx

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ExportError(
            f"the quantised ONNX graph has {len(inputs)} inputs and {len(graph.output)} outputs, "
            "not one of each"
        )
    graph_input, graph_output = inputs[0], graph.output[0]
    uint8_names = {graph_input.name, graph_output.name}

    # ---- input: drop the QuantizeLinear of the (reshaped) pixels
    pixels = graph_input.name
    users = _consumers(graph, pixels)
    if (
        len(users) == 1
        and users[0].op_type in ("Reshape", "Flatten")
        and list(users[0].input[:1]) == [pixels]
    ):
        pixels = users[0].output[0]
        uint8_names.add(pixels)
        users = _consumers(graph, pixels)
    if len(users) != 1 or users[0].op_type != "QuantizeLinear" or users[0].input[0] != pixels:
        raise ExportError(
            f"the quantised ONNX graph does not start by quantising its input {graph_input.name!r} "
            f"(found {', '.join(n.op_type for n in users) or 'nothing'}); cannot give it uint8 input"
        )
    quantize = users[0]
    scale, zero_point = _quantization(quantize, initializers)
    if not (_same(scale, INPUT_SCALE) and _same(zero_point, INPUT_ZERO_POINT)):
        raise ExportError(
            f"the int8 ONNX input is quantised with scale {scale!r} and zero point {zero_point!r}, "
            f"not float32(1/255) = {INPUT_SCALE!r} and uint8 0: quantise(pixels / 255) would not "
            "be the pixels themselves, so the model cannot take raw uint8 pixels (are the "
            "calibration's black and white anchor images missing?)"
        )
    _rename_inputs(graph, quantize.output[0], pixels)
    graph.node.remove(quantize)

    # ---- output: drop the DequantizeLinear after the last QuantizeLinear
    dequantize = _producer(graph, graph_output.name)
    quantize = _producer(graph, dequantize.input[0]) if dequantize is not None else None
    if (
        dequantize is None
        or dequantize.op_type != "DequantizeLinear"
        or quantize is None
        or quantize.op_type != "QuantizeLinear"
        or len(_consumers(graph, quantize.output[0])) != 1
    ):
        raise ExportError(
            f"the quantised ONNX graph does not end in QuantizeLinear -> DequantizeLinear -> "
            f"{graph_output.name!r}; cannot give it uint8 output"
        )
    scale, zero_point = _quantization(quantize, initializers)
    de_scale, de_zero_point = _quantization(dequantize, initializers)
    if not (_same(scale, de_scale) and _same(zero_point, de_zero_point) and zero_point.dtype == np.uint8):
        raise ExportError(
            f"the int8 ONNX output is quantised with scale {scale!r}, zero point {zero_point!r} and "
            f"dequantised with {de_scale!r}, {de_zero_point!r}: cannot give it uint8 output"
        )
    dropped = quantize.output[0]
    quantize.output[0] = graph_output.name
    graph.node.remove(dequantize)

    for value in (graph_input, graph_output, *graph.value_info):
        if value.name in uint8_names:
            value.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    for value in [v for v in graph.value_info if v.name == dropped]:
        graph.value_info.remove(value)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    return float(scale), int(zero_point)


def _same(a: Any, b: Any) -> bool:
    """Same dtype and same value, for numpy scalars."""
    return bool(np.asarray(a).dtype == np.asarray(b).dtype and a == b)


def _consumers(graph: Any, name: str) -> list[Any]:
    return [node for node in graph.node if name in node.input]


def _producer(graph: Any, name: str) -> Any:
    return next((node for node in graph.node if name in node.output), None)


def _rename_inputs(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _quantization(node: Any, initializers: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A Quantize/DequantizeLinear's per-tensor ``(scale, zero_point)`` as numpy scalars (a
    missing zero point is uint8 0, as the operator defines it)."""
    from onnx import numpy_helper

    def scalar(name: str) -> np.ndarray:
        if name not in initializers:
            raise ExportError(
                f"the quantisation parameter {name!r} of {node.name or node.op_type} is not an initializer"
            )
        value = numpy_helper.to_array(initializers[name])
        if value.size != 1:
            raise ExportError(
                f"{node.name or node.op_type} is quantised per channel ({name!r}), not per tensor"
            )
        return value.reshape(())

    scale = scalar(node.input[1])
    zero_point = scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else np.array(0, np.uint8)
    return scale, zero_point


def float_model(job: ExportJob) -> Any:
    """The float32 ``ModelProto``: checked in full, batch dimension named ``batch``."""
    import onnx

    if job.opset < MIN_OPSET:
        raise ExportError(
            f"--opset {job.opset} is too old: use {MIN_OPSET} or newer (default {DEFAULT_OPSET})"
        )
    tf = tensorflow()
    tf2onnx = _tf2onnx()
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    keras_model = static_shapes(job.model)
    signature = [tf.TensorSpec((None, *job.per_image), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(pixels: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: keras_model(pixels, training=False)}

    # tf2onnx numbers the names it invents with a process-wide counter, and the graph's doc string
    # names TF's traced function by a process-wide uid: any conversion or tracing earlier in the
    # process (a test session, a notebook) changed both, and with them the file's length once a
    # number gained a digit. A fresh counter and a fixed doc string make that length stable.
    tf2onnx.utils.INTERNAL_NAME = 1
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=job.opset)
    except Exception as exc:  # tf2onnx raises bare ValueError/RuntimeError for unsupported opsets
        raise ExportError(
            f"tf2onnx cannot convert at opset {job.opset}: {type(exc).__name__}: {exc}"
        ) from None
    proto.graph.doc_string = "converted by tf2onnx from the Keras model's serving function"
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the converted ONNX model fails the checker at opset {job.opset}: {exc}") from None
    return proto


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"--opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})"
        )


def read_io(path: Path) -> tuple[TensorSpec, TensorSpec]:
    """Input and output as ONNX Runtime (the runtime's engine) sees them in the written file."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    return tensor_spec(model_input), tensor_spec(model_output)
