"""Classify a picture of a digit with an exported model: the whole embedding API in a few lines.

Usage: ``python examples/embed.py artifacts/model.int8.tflite digit.png``
"""

import sys

from mnist_edge.images import load_image
from mnist_edge.runtime import load

# load() checks the file against its manifest and picks LiteRT or onnxruntime by the suffix.
with load(sys.argv[1]) as classifier:
    best = classifier.top_k(load_image(sys.argv[2]))[0][0]  # any PNG/JPEG, fitted to 28x28
print(f"{best.label} {best.name} (probability {best.probability:.2f})")
