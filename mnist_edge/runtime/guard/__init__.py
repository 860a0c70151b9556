"""What stands between a model file and an engine that trusts it.

- :mod:`.tflite_check` and :mod:`.onnx_check`: structural pre-checks in Python, run on the exact
  bytes before LiteRT or onnxruntime parses them (every backend's ``check_file``);
- :mod:`.sandbox` (parent side) and :mod:`.child`: ``load(path, isolate=True)`` first loads and
  runs the bytes in a child process limited in memory and time.

Nothing is imported here: each check is imported when a model of its kind is loaded.
"""
