"""Rebuild the regression corpus: small model files that crash or exhaust the bare engines.

Each entry reproduces, on a tiny classifier (Flatten -> Dense(10) -> softmax, 8-31 KB, or a tiny
CNN for the convolution and pooling options), one kind of file the fuzz runs and option sweeps found
against our real exports (or a hand-made mutation showed). For every entry the
script measures what the *bare* engine does with the file (pre-checks switched off, in a limited
sandbox child, three fresh children) and what ``mnist_edge.runtime`` does, and writes both to
``corpus.json``; ``test_model_files.py`` replays the corpus against the guarded runtime.

Needs the ``train`` extra (TensorFlow builds the tiny models)::

    python tests/reliability/corpus/make_corpus.py
"""

from __future__ import annotations

import json
import random
import signal
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/: for reliability.mutators

from reliability.mutators import Field, set_field, tflite_fields  # noqa: E402

from mnist_edge.runtime.guard.sandbox import Sandbox  # noqa: E402

#: What an app does with the file using the engine alone: open it, allocate, run one zero batch.
BARE_SCRIPT = """
import resource, sys
import numpy as np
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
path = sys.argv[1]
try:
    if path.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_path=path)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    else:
        import onnxruntime as ort
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in first.shape]
        session.run(None, {first.name: np.zeros(shape, np.float32)})
    print("ran")
except MemoryError:
    print("memory")
except Exception as exc:
    print("error:" + type(exc).__name__)
"""
MEMORY = 2 << 30
TIMEOUT = 30
TRIES = 3


def tiny_exports(folder: Path) -> dict[str, bytes]:
    """The tiny classifier, exported by our own exporters (fp32 and int8, TFLite and ONNX)."""

    def layers(keras: Any) -> list[Any]:
        return [
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ]

    return _fit_and_export(folder, "tiny", layers, ["fp32", "int8"])


def tiny_cnn_exports(folder: Path) -> dict[str, bytes]:
    """A tiny CNN (a strided convolution, an average pool, a dense layer), exported in float32."""

    def layers(keras: Any) -> list[Any]:
        return [
            keras.layers.Reshape((28, 28, 1), name="image"),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv"),
            keras.layers.AveragePooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="softmax", name="probabilities"),
        ]

    exports = _fit_and_export(folder, "tiny_cnn", layers, ["fp32"])
    return {f"cnn.{name}": data for name, data in exports.items()}


def _fit_and_export(
    folder: Path, name: str, layers: Callable[[Any], list[Any]], precisions: list[str]
) -> dict[str, bytes]:
    """``Input(28, 28)`` then ``layers(keras)``, fitted one epoch on 2,000 images (seed 0) and
    exported to TFLite and ONNX in ``precisions``: ``{"<precision>.<format>": bytes}``."""
    import keras

    from mnist_edge.data import load_mnist_data
    from mnist_edge.export import export_many

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(28, 28), name="pixels"), *layers(keras)], name=name)
    mnist = load_mnist_data(log=lambda _msg: None)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(mnist.x_train[:2000] / 255.0, mnist.y_train[:2000], epochs=1, verbose=0)
    model.save(folder / f"{name}.keras")
    results = export_many(folder / f"{name}.keras", ["tflite", "onnx"], precisions, folder, data=mnist)
    return {f"{r.precision}.{r.format}": r.path.read_bytes() for r in results}


# --------------------------------------------------------------------------- the entries


def _fields(data: bytes) -> dict[str, Field]:
    return {f.label: f for f in tflite_fields(data)}


def _opcodes(data: bytes) -> list[int]:
    fields = _fields(data)
    codes = []
    i = 0
    while f"model.operator_codes[{i}].<offset>" in fields:
        deprecated = fields.get(f"model.operator_codes[{i}].deprecated_builtin_code")
        builtin = fields.get(f"model.operator_codes[{i}].builtin_code")
        values = [struct.unpack_from("<" + f.fmt, data, f.pos)[0] for f in (deprecated, builtin) if f]
        codes.append(max(values))
        i += 1
    return codes


def _operator(data: bytes, builtin: int) -> str:
    """Label prefix of the first operator running builtin operator ``builtin``."""
    fields = _fields(data)
    codes = _opcodes(data)
    i = 0
    while f"model.subgraphs[0].operators[{i}].<offset>" in fields:
        f = fields.get(f"model.subgraphs[0].operators[{i}].opcode_index")  # absent: the default, 0
        if codes[struct.unpack_from("<I", data, f.pos)[0] if f else 0] == builtin:
            return f"model.subgraphs[0].operators[{i}]"
        i += 1
    raise LookupError(builtin)


def _set(data: bytes, label: str, value: float) -> bytes:
    return set_field(data, _fields(data)[label], value)


def _value(data: bytes, label: str) -> int:
    field = _fields(data)[label]
    return int(struct.unpack_from("<" + field.fmt, data, field.pos)[0])


FC, RESHAPE, STRIDED_SLICE, SHAPE, AVERAGE_POOL_2D = 9, 22, 45, 77, 1
#: Pool2DOptions' filter_height: field 4 of the options table (the mutators number fields from 0).
FILTER_HEIGHT = "builtin_options.field4"


def _cnn_entries(base: dict[str, bytes]) -> list[dict]:
    cnn = base["cnn.fp32.tflite"]
    height = _fields(cnn)[f"{_operator(cnn, AVERAGE_POOL_2D)}.{FILTER_HEIGHT}"]
    return [
        {
            "file": "tflite-average-pool-height-min.tflite",
            "found_by": "option sweep over a CNN's model.fp32.tflite (filter_height -2^31): SIGSEGV",
            "what": "AVERAGE_POOL_2D's filter_height (an int32 option) set to -2^31",
            "data": set_field(cnn, Field(height.pos, "i", height.label), -(2**31)),
            "refused_because": "filter_height -2147483648",
        },
        {
            "file": "onnx-conv-padded-by-100000.onnx",
            "found_by": "attribute sweep over a CNN's model.fp32.onnx (pads -> 100000): 7 TB asked",
            "what": "the Conv's pads set to 100,000: onnxruntime sizes a buffer from it before any check",
            "data": _conv_pads(base["cnn.fp32.onnx"], 100_000),
            "refused_because": "pads [100000",
        },
    ]


def _conv_pads(data: bytes, pad: int) -> bytes:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    pads = next((a for a in conv.attribute if a.name == "pads"), None)
    if pads is None:
        pads = conv.attribute.add()
        pads.name, pads.type = "pads", onnx.AttributeProto.INTS
    del pads.ints[:]
    pads.ints.extend([pad] * 4)
    return model.SerializeToString()


def _entries(base: dict[str, bytes]) -> list[dict]:
    int8, fp32 = base["int8.tflite"], base["fp32.tflite"]
    tensors = "model.subgraphs[0].tensors"
    fc8 = _operator(int8, FC)
    dense_out = _value(int8, f"{fc8}.outputs[0]")
    fc32 = _operator(fp32, FC)
    dense_out32 = _value(fp32, f"{fc32}.outputs[0]")
    bias32 = _value(fp32, f"{fc32}.inputs[2]")
    shape_op = _operator(int8, SHAPE)
    strided_index = _opcodes(int8).index(STRIDED_SLICE)
    input_tensor = _value(int8, "model.subgraphs[0].inputs[0]")
    output_tensor = _value(int8, "model.subgraphs[0].outputs[0]")
    return [
        {
            "file": "tflite-zero-subgraphs.tflite",
            "found_by": "a hand-made mutation (zeroing the 2-byte subgraphs entry); reproduced here",
            "what": "the model table's vtable entry for subgraphs zeroed: the field is absent",
            "data": _set(int8, "model.subgraphs.<field offset>", 0),
            "refused_because": "0 subgraphs",
        },
        {
            "file": "tflite-dimension-bomb.tflite",
            "found_by": (
                "a hand-made mutation; measured here without the 2 GiB limit: 8.2 GB peak, invoke() 26 s"
            ),
            "what": "the dense layer's output declared (1, 2^31-1): 8 GB at the first invoke()",
            "data": _set(fp32, f"{tensors}[{dense_out32}].shape[1]", 2**31 - 1),
            "refused_because": "declares",
        },
        {
            "file": "tflite-dense-without-weights.tflite",
            "found_by": "structure fuzz of model.fp32.tflite (operators[6].inputs[1] -> -1)",
            "what": "FULLY_CONNECTED's weights input set to -1 (absent)",
            "data": _set(fp32, f"{_operator(fp32, FC)}.inputs[1]", -1),
            "refused_because": "input 1 is -1",
        },
        {
            "file": "tflite-strided-slice-without-strides.tflite",
            "found_by": "structure fuzz of model.int8.tflite (operators[2].inputs[3] -> -1)",
            "what": "STRIDED_SLICE's strides input set to -1 (absent)",
            "data": _set(int8, f"{_operator(int8, STRIDED_SLICE)}.inputs[3]", -1),
            "refused_because": "input 3 is -1",
        },
        {
            "file": "tflite-shape-relabelled-strided-slice.tflite",
            "found_by": "structure fuzz of model.int8.tflite: SIGSEGV 2 of 3 tries there; an error here",
            "what": "the SHAPE operator's opcode index pointed at STRIDED_SLICE (one input, ShapeOptions)",
            "data": _set(int8, f"{shape_op}.opcode_index", strided_index),
            "refused_because": "another operator's options",
        },
        {
            "file": "tflite-input-scale-zero.tflite",
            "found_by": "scale sweep over model.int8.tflite (0 and -1 segfault)",
            "what": "the input's quantisation scale set to 0",
            "data": _set(int8, f"{tensors}[{input_tensor}].quantization.scale[0]", 0.0),
            "refused_because": "quantisation scale 0.0",
        },
        {
            "file": "tflite-scale-tiny.tflite",
            "found_by": "scale sweep over model.int8.tflite (1e-38 and below segfault)",
            "what": "the input's quantisation scale set to 1e-38",
            "data": _set(int8, f"{tensors}[{input_tensor}].quantization.scale[0]", 1e-38),
            "refused_because": "quantisation scale",
        },
        {
            "file": "tflite-scale-nan.tflite",
            "found_by": "structure fuzz of model.int8.tflite (a scale entry redirected to a NaN): SIGSEGV",
            "what": "the dense output's quantisation scale set to NaN",
            "data": _set(int8, f"{tensors}[{dense_out}].quantization.scale[0]", float("nan")),
            "refused_because": "quantisation scale nan",
        },
        {
            "file": "tflite-zero-point-out-of-range.tflite",
            "found_by": "zero-point sweep over model.int8.tflite (outside the integer type segfaults)",
            "what": "the uint8 output's zero point set to -128",
            "data": _set(int8, f"{tensors}[{output_tensor}].quantization.zero_point[0]", -128),
            "refused_because": "zero point -128",
        },
        {
            "file": "tflite-dense-fed-its-weights.tflite",
            "found_by": "structure fuzz of model.fp16.tflite (a dense input rewired): 12 rows for 4 images",
            "what": "FULLY_CONNECTED's input rewired to its own weights: 10 output rows whatever the batch",
            "data": _set(fp32, f"{fc32}.inputs[0]", _value(fp32, f"{fc32}.inputs[1]")),
            "refused_because": "rows for 8 images",
            "refused_by": "classifier",
        },
        {
            "file": "onnx-rows-from-weights.onnx",
            "found_by": "structure fuzz of model.fp32.onnx (a Relu's input rewired to weights): 784 rows",
            "what": "the bias Add's input rewired to the weight matrix: (784, 10) whatever the batch",
            "data": _rewire_add(base["fp32.onnx"]),
            "refused_because": "784 rows for 8 images",
            "refused_by": "classifier",
        },
        {
            "file": "tflite-reshape-to-a-bias.tflite",
            "found_by": "structure fuzz of model.int8.tflite (RESHAPE's shape -> a 300-entry bias): SIGSEGV",
            "what": "RESHAPE's shape input pointed at the dense layer's int32 bias (10 entries)",
            "data": _set(int8, f"{_operator(int8, RESHAPE)}.inputs[1]", _value(int8, f"{fc8}.inputs[2]")),
            "refused_because": "10-entry integer constant",
        },
        {
            "file": "tflite-dense-writes-a-constant.tflite",
            "found_by": "structure fuzz of model.fp32.tflite (an activation given a bias buffer): SIGSEGV",
            "what": "the dense layer's output tensor given its bias's buffer (same size): a constant output",
            "data": _set(
                fp32, f"{tensors}[{dense_out32}].buffer", _value(fp32, f"{tensors}[{bias32}].buffer")
            ),
            "refused_because": "writes into constant tensor",
        },
        {
            "file": "tflite-dense-writes-the-input.tflite",
            "found_by": "structure fuzz of model.fp16.tflite (a dense output -> the input tensor): SIGSEGV",
            "what": "the dense layer's output index pointed at the model's input tensor",
            "data": _set(fp32, f"{fc32}.outputs[0]", _value(fp32, "model.subgraphs[0].inputs[0]")),
            "refused_because": "writes into the model input",
        },
        {
            "file": "onnx-fixed-batch-of-a-million.onnx",
            "found_by": "structure fuzz of model.fp32.onnx (input dim -> 2^20): our padding asked for 3 GB",
            "what": "the input batch fixed at 2^20: the runtime would pad every call to a million images",
            "data": _fixed_batch(base["fp32.onnx"], 1 << 20),
            "refused_because": "batches of exactly 1048576",
            "refused_by": "classifier",
        },
        {
            "file": "onnx-external-data-passwd.onnx",
            "found_by": (
                "the security review (ONNX external data); onnxruntime 1.32 itself refuses paths that escape"
            ),
            "what": "an initializer whose data is external, at ../../../../etc/passwd",
            "data": _external(base["fp32.onnx"], "../../../../etc/passwd"),
            "refused_because": "external",
        },
        {
            "file": "onnx-external-data-cwd.onnx",
            "found_by": "measured: onnxruntime given bytes reads weights.bin from the working directory",
            "what": "an initializer whose data is external, in weights.bin: onnxruntime reads it from the "
            "working directory when given bytes",
            "data": _external(base["fp32.onnx"], "weights.bin"),
            "refused_because": "external",
        },
        {
            "file": "onnx-expand-memory-bomb.onnx",
            "found_by": "hand-made; measured here without the 2 GiB limit: 3.3 GB peak per call",
            "what": "a valid graph that Expands a sum of its input to 2^20 x 784 floats (3.2 GB) per call",
            "data": _expand_bomb(),
            "refused_because": "operator Expand",
        },
    ]


def _external(data: bytes, location: str) -> bytes:
    import onnx
    from onnx import TensorProto

    model = onnx.ModelProto()
    model.ParseFromString(data)
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    length = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _fixed_batch(data: bytes, batch: int) -> bytes:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    return model.SerializeToString()


def _rewire_add(data: bytes) -> bytes:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    weights = next(t.name for t in model.graph.initializer if list(t.dims) == [784, 10])
    add = next(node for node in model.graph.node if node.op_type == "Add")
    add.input[0] = weights
    return model.SerializeToString()


def _expand_bomb() -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([1 << 20, 784], np.int64), "bomb_shape"),
        numpy_helper.from_array(np.array([-1, 784], np.int64), "back_shape"),
        numpy_helper.from_array(rng.normal(0, 0.01, (784, 10)).astype(np.float32), "w"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["pixels", "flat_shape"], ["flat"]),
            helper.make_node("ReduceSum", ["flat"], ["total"], keepdims=1),
            helper.make_node("Expand", ["total", "bomb_shape"], ["huge"]),
            helper.make_node("ReduceMean", ["huge"], ["mean"], keepdims=1),
            helper.make_node("Add", ["flat", "mean"], ["shifted"]),
            helper.make_node("MatMul", ["shifted", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "expand_bomb",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# --------------------------------------------------------------------------- measuring


def _bare(path: Path) -> dict[str, int]:
    """Outcomes of the bare engine on ``path`` in fresh limited children (crashes can depend on the heap)."""
    counts: Counter[str] = Counter()
    script = BARE_SCRIPT.replace("MEMORY", str(MEMORY))
    for _ in range(TRIES):
        try:
            done = subprocess.run(
                [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=TIMEOUT
            )
        except subprocess.TimeoutExpired:
            counts["timeout"] += 1
            continue
        if done.returncode < 0:
            counts[f"crashed:{signal.Signals(-done.returncode).name}"] += 1
        else:
            lines = done.stdout.strip().splitlines()
            counts[lines[-1] if lines else f"exit {done.returncode}"] += 1
    return dict(counts)


def _guarded(data: bytes, suffix: str) -> dict[str, int]:
    """Outcomes of ``mnist_edge.runtime`` on the same bytes, in its sandbox."""
    counts: Counter[str] = Counter()
    with Sandbox() as box:
        for _ in range(TRIES):
            trial = box.trial("model" + suffix, data)
            counts[trial.outcome + (f":{trial.kind}" if trial.kind else "")] += 1
    return dict(counts)


def main() -> None:
    random.seed(0)
    bases = {
        ("int8.tflite", "fp32.tflite", "fp32.onnx"): tiny_exports,
        ("cnn.fp32.tflite", "cnn.fp32.onnx"): tiny_cnn_exports,
    }
    base: dict[str, bytes] = {}
    for names, build in bases.items():
        if all((HERE / f"tiny.{name}").is_file() for name in names):  # keep the committed bases
            base.update({name: (HERE / f"tiny.{name}").read_bytes() for name in names})
        else:
            with tempfile.TemporaryDirectory() as scratch:
                base.update(build(Path(scratch)))
    entries = []
    for name in (name for names in bases for name in names):
        path = HERE / f"tiny.{name}"
        path.write_bytes(base[name])
        print(f"base {path.name}: {len(base[name])} bytes")
    for entry in [*_entries(base), *_cnn_entries(base)]:
        data = entry.pop("data")
        entry.setdefault("refused_by", "pre-check")  # or "classifier": its checks once the engine has it
        (HERE / entry["file"]).write_bytes(data)
        suffix = Path(entry["file"]).suffix
        entry["bytes"] = len(data)
        entry["bare_engine"] = _bare(HERE / entry["file"])
        entry["runtime"] = _guarded(data, suffix)
        print(f"{entry['file']}: bare {entry['bare_engine']}, runtime {entry['runtime']}")
        entries.append(entry)
    limits = {"tries": TRIES, "memory_bytes": MEMORY, "timeout_s": TIMEOUT}
    text = json.dumps({**limits, "entries": entries}, indent=2) + "\n"
    (HERE / "corpus.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
