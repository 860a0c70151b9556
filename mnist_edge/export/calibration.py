"""The one calibration source for both engines' int8 models.

TFLite and ONNX Runtime see the same images in the same order: stratified over the ten classes,
drawn with a seeded generator from the training images *after* the validation slice (the test set
is never used to build a model), scaled like the tutorial (float32 / 255). Two range anchors - an
all-black and an all-white image - come first so that every calibrator sees exactly [0, 1] at the
input and picks input scale 1/255: raw uint8 pixels then map onto the quantised input exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE, NUM_CLASSES, PIXEL_SCALE
from mnist_edge.data import MnistData
from mnist_edge.errors import ExportError
from mnist_edge.train import TrainConfig

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 0
#: The same validation split as training (one source of truth: TrainConfig's default).
VALIDATION_SIZE: int = TrainConfig.validation_size
SOURCE = f"mnist x_train[{VALIDATION_SIZE}:], stratified over 10 classes"


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration images (float32, (n, 28, 28), in [0, 1]) with the recipe that drew them."""

    images: np.ndarray
    samples: int
    seed: int
    source: str = SOURCE

    def with_anchors(self) -> np.ndarray:
        """Black and white range anchors followed by the drawn images."""
        anchors = np.stack([np.zeros(IMAGE_SHAPE, np.float32), np.ones(IMAGE_SHAPE, np.float32)])
        return np.concatenate([anchors, self.images])

    def batches(self, batch_size: int = 1, per_image: tuple[int, ...] = IMAGE_SHAPE) -> Iterator[np.ndarray]:
        """The anchors and images in order, ``batch_size`` at a time, each image shaped ``per_image``
        (the model's input: ``(28, 28)``, ``(784,)`` or ``(28, 28, 1)``)."""
        data = self.with_anchors()
        data = data.reshape(len(data), *per_image)
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``calibration`` entry."""
        return {"samples": self.samples, "seed": self.seed, "source": self.source, "range_anchors": 2}


def calibration_set(
    data: MnistData, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED
) -> CalibrationSet:
    """Draw ``samples`` training images, as even over the classes as the count allows.

    Each class gets ``samples // 10`` images; the remainder goes to classes chosen by the same
    seeded generator. Same data, samples and seed -> the same images, on any machine.
    """
    x_pool = data.x_train[VALIDATION_SIZE:]
    y_pool = data.y_train[VALIDATION_SIZE:]
    by_class = [np.flatnonzero(y_pool == label) for label in range(NUM_CLASSES)]
    limit = NUM_CLASSES * min(len(idx) for idx in by_class)
    if not 1 <= samples <= limit:
        raise ExportError(f"--calibration-samples must be between 1 and {limit}, got {samples}")
    if seed < 0:
        raise ExportError(f"--seed must be >= 0, got {seed}")
    rng = np.random.default_rng(seed)
    counts = np.full(NUM_CLASSES, samples // NUM_CLASSES)
    counts[rng.choice(NUM_CLASSES, samples % NUM_CLASSES, replace=False)] += 1
    chosen = np.concatenate(
        [rng.choice(idx, n, replace=False) for idx, n in zip(by_class, counts, strict=True)]
    )
    rng.shuffle(chosen)
    images = x_pool[chosen].astype(np.float32) / PIXEL_SCALE
    return CalibrationSet(images=images, samples=samples, seed=seed)
