"""ONNX targets: float32 through tf2onnx, int8 through ONNX Runtime's static QDQ quantisation.

Why ``tf2onnx.convert.from_function`` on our own ``tf.function``: ``from_keras`` breaks on Keras 3
models (``KeyError: 'keras_tensor_...'``), and Keras's ``model.export(format="onnx")`` names the
input ``input_layer``, needs the model called once first and hides the opset. An explicit
``input_signature`` gives us stable I/O names (``pixels`` -> ``probabilities``), a dynamic batch
dimension, the opset the user asks for, and a plain ``ModelProto`` to hand to the quantiser.

The int8 model keeps float32 input and output: QuantizeLinear/DequantizeLinear pairs inside the
graph do the conversion, so the app feeds ``pixels / 255`` exactly as for float32.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._heavy import tensorflow
from mnist_edge.errors import ExportError
from mnist_edge.export._base import FLOAT_PREPROCESSING, INPUT_NAME, OUTPUT_NAME, ExportJob, Written
from mnist_edge.manifest import TensorSpec

#: A recent opset that onnxruntime >= 1.20 runs and tf2onnx 1.17 writes.
DEFAULT_OPSET = 17
#: The opsets tf2onnx 1.17 writes (``tf2onnx.constants.OPSET_TO_IR_VERSION``); checked before the
#: slow part so a bad ``--opset`` fails at once.
MIN_OPSET, MAX_OPSET = 13, 18
BATCH_DIM = "batch"
CALIBRATION_BATCH = 100

INT8_PREPROCESSING: dict[str, Any] = {
    "divide_by": 255.0,
    "description": "float32 pixels / 255; quantisation happens inside the model (QDQ), I/O stay float32",
}

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
}


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
            self._batches = calibration.batches(batch_size=CALIBRATION_BATCH)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="mnist-edge-onnx-") as scratch:
        float_path, prepared = Path(scratch, "float.onnx"), Path(scratch, "prepared.onnx")
        float_path.write_bytes(float_model(job).SerializeToString())
        # Shape inference + graph clean-up first, as ONNX Runtime recommends before quantising.
        quant_pre_process(float_path, prepared)
        quantize_static(
            prepared,
            path,
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
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    model_input, model_output = read_io(path)
    return Written(input=model_input, output=model_output, preprocessing=dict(INT8_PREPROCESSING))


def float_model(job: ExportJob) -> Any:
    """The float32 ``ModelProto``: checked in full, batch dimension named ``batch``."""
    import onnx
    import tf2onnx

    if job.opset < MIN_OPSET:
        raise ExportError(
            f"--opset {job.opset} is too old: use {MIN_OPSET} or newer (default {DEFAULT_OPSET})"
        )
    tf = tensorflow()
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    keras_model = job.model
    per_image = tuple(int(d) for d in keras_model.inputs[0].shape[1:])
    signature = [tf.TensorSpec((None, *per_image), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(pixels: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: keras_model(pixels, training=False)}

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=job.opset)
    except Exception as exc:  # tf2onnx raises bare ValueError/RuntimeError for unsupported opsets
        raise ExportError(
            f"tf2onnx cannot convert at opset {job.opset}: {type(exc).__name__}: {exc}"
        ) from None
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
    return _spec(model_input), _spec(model_output)


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(name=arg.name, shape=shape, dtype=_ORT_DTYPES[arg.type])
