"""What every exporter receives and returns, kept apart so the per-target modules and the table in
``__init__`` can share it without importing each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_edge._mnist import PIXEL_SCALE
from mnist_edge.export.calibration import CalibrationSet
from mnist_edge.manifest import TensorSpec

#: Names of the graph's input and output wherever the exporter controls them (ONNX; the TFLite
#: converter derives its own from the Keras model, and the manifest records whatever it chose).
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class ExportJob:
    """One conversion: the loaded Keras model plus the options the exporter may need."""

    model: Any
    opset: int
    calibration: CalibrationSet | None = None
    #: Artifacts an exporter builds on, by (format, precision): the C target reads the int8 .tflite.
    inputs: Mapping[tuple[str, str], Path] = field(default_factory=dict)
    #: Options of the C target (see mnist_edge.export.c).
    rounding: str = "litert"
    prefix: str = "mnist_edge"

    def input_artifact(self, fmt: str, precision: str) -> Path:
        path = self.inputs.get((fmt, precision))
        if path is None:  # the table says which exporters build on another; this is a bug guard
            raise RuntimeError(f"this exporter needs the {fmt} {precision} artifact but the job has none")
        return path

    @property
    def per_image(self) -> tuple[int, ...]:
        """The model's per-image input shape: ``(28, 28)``, ``(784,)`` or ``(28, 28, 1)``."""
        return tuple(int(d) for d in self.model.inputs[0].shape[1:])

    def calibration_set(self) -> CalibrationSet:
        if self.calibration is None:  # the table says which exporters calibrate; this is a bug guard
            raise RuntimeError("this exporter needs calibration images but the job has none")
        return self.calibration


@dataclass(frozen=True)
class Written:
    """What an exporter reports about the file it wrote, read back from that file."""

    input: TensorSpec
    output: TensorSpec
    #: ``preprocessing`` for the manifest: how pixels become the model's input.
    preprocessing: dict[str, Any]
    #: Files written beside the artifact, (name, bytes), each atomically before the artifact itself.
    companions: tuple[tuple[str, bytes], ...] = ()
    #: For an artifact generated from another: what it came from and how (the manifest's block).
    generated_from: dict[str, Any] | None = None


#: ``exporter(job, path)`` writes the artifact to ``path`` (a temp name that is renamed into place
#: afterwards) and describes it.
Exporter = Callable[[ExportJob, Path], Written]

FLOAT_PREPROCESSING: dict[str, Any] = {"divide_by": PIXEL_SCALE, "description": "float32 pixels / 255"}
#: Both int8 models take uint8 pixels as they are (input scale 1/255, zero point 0).
INT8_PREPROCESSING: dict[str, Any] = {
    "divide_by": PIXEL_SCALE,
    "description": "uint8 pixels as they are: input scale 1/255 and zero point 0 make "
    "quantise(pixels / 255) == pixels",
}
