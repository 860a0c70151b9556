"""Classify a picture of a digit with an exported model: the whole embedding API in a few lines.

Usage: ``python examples/embed.py artifacts/model.int8.tflite digit.png``
"""

import sys

from mnist_edge.images import load_image
from mnist_edge.runtime import load

classifier = load(sys.argv[1])  # checks the file against its manifest, picks LiteRT or onnxruntime
probs = classifier.predict_proba(load_image(sys.argv[2]))[0]  # any PNG/JPEG, fitted to 28x28
label = int(probs.argmax())
print(f"{label} {classifier.class_names[label]} (probability {probs[label]:.2f})")
