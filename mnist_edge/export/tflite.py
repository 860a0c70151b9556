"""TFLite targets: float32, float16, dynamic-range and full-integer int8, via ``TFLiteConverter``.

``from_keras_model`` is the converter's own path for a Keras model (a concrete function over the
Keras 3 variables fails at calibration with READ_VARIABLE). Each precision is one small function
that configures the converter; the conversion, the write and the read-back are shared. The model
is converted with constant-shape reshapes in place of its ``Flatten`` and ``Reshape`` layers
(:mod:`~mnist_edge.export.static_shapes`).

The int8 model takes **uint8** input and gives uint8 output: with the calibration anchors the
converter picks input scale 1/255 and zero point 0, so an app feeds raw pixels as they are, no
arithmetic and no copy. (The int8 alternative would need ``pixel - 128``.) The manifest records
the parameters the converter actually produced, read back from the written file.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._heavy import tensorflow
from mnist_edge.export._base import FLOAT_PREPROCESSING, INT8_PREPROCESSING, ExportJob, Written
from mnist_edge.export.static_shapes import static_shapes
from mnist_edge.manifest import TensorSpec


def export_fp32(job: ExportJob, path: Path) -> Written:
    return _convert(job, path, lambda converter, tf: None, FLOAT_PREPROCESSING)


def export_fp16(job: ExportJob, path: Path) -> Written:
    """float16 weights, float32 I/O (the converter's ``supported_types = [float16]``)."""

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    return _convert(job, path, configure, FLOAT_PREPROCESSING)


def export_dynamic(job: ExportJob, path: Path) -> Written:
    """Dynamic-range: int8 weights, float activations and I/O (``Optimize.DEFAULT``, no dataset)."""

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    return _convert(job, path, configure, FLOAT_PREPROCESSING)


def export_int8(job: ExportJob, path: Path) -> Written:
    """Full-integer: int8 kernels only (``TFLITE_BUILTINS_INT8``), uint8 input and output."""
    calibration = job.calibration_set()

    def representative_dataset() -> Any:
        for batch in calibration.batches(batch_size=1, per_image=job.per_image):
            yield [batch]

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8

    return _convert(job, path, configure, INT8_PREPROCESSING)


def _convert(
    job: ExportJob,
    path: Path,
    configure: Callable[[Any, Any], None],
    preprocessing: dict[str, Any],
) -> Written:
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(static_shapes(job.model))
    configure(converter, tf)
    # Keras prints "Saved artifact at /tmp/..." for its intermediate SavedModel, and the calibrator
    # warns about input statistics we supply through the dataset: noise for a CLI user.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        flatbuffer = converter.convert()
    path.write_bytes(flatbuffer)
    model_input, model_output = read_io(path)
    return Written(input=model_input, output=model_output, preprocessing=dict(preprocessing))


def read_io(path: Path) -> tuple[TensorSpec, TensorSpec]:
    """Input and output as LiteRT (the runtime's engine) sees them in the written file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (model_input,) = interpreter.get_input_details()
    (model_output,) = interpreter.get_output_details()
    return _spec(model_input), _spec(model_output)


def _spec(detail: dict[str, Any]) -> TensorSpec:
    shape = tuple(None if int(d) < 0 else int(d) for d in detail["shape_signature"])
    scale, zero_point = detail["quantization"]
    quantized = float(scale) > 0
    return TensorSpec(
        name=str(detail["name"]),
        shape=shape,
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )
