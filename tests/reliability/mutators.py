"""Model-file mutators for the fuzz tests: random byte damage, and structure-aware edits that keep
the file parseable but change what it says (counts, indices, dimensions, offsets).

Why both: random flips mostly produce files the engines' own parsers reject, or weights that are
wrong but harmless; the crashes and memory bombs we found all came from *valid* structure with
nonsense in it (a zero subgraph count, a 2^31-1 dimension). Every mutator is a pure function of
``(data, rng)`` returning the mutant and a one-line description, so a seed reproduces a run.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from mnist_edge.runtime.guard.flatbuffer import _Buffer, _Table

Mutator = Callable[[bytes, random.Random], tuple[bytes, str]]

# --------------------------------------------------------------------------- random damage


def flip_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    positions = sorted(rng.randrange(len(out)) for _ in range(rng.choice((1, 1, 2, 4, 16))))
    for pos in positions:
        out[pos] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    return bytes(out), f"flip bytes at {positions[:6]}"


def truncate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    keep = rng.choice((rng.randrange(1, 64), rng.randrange(len(data)), len(data) - rng.randrange(1, 64)))
    keep = max(1, min(keep, len(data) - 1))
    return data[:keep], f"truncate to {keep} of {len(data)} bytes"


def zero_block(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    size = rng.choice((2, 4, 8, 64, 1024, 16384))
    start = rng.randrange(len(data))
    end = min(len(data), start + size)
    return data[:start] + bytes(end - start) + data[end:], f"zero bytes {start}..{end}"


def duplicate_region(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    size = rng.choice((4, 16, 256, 4096))
    src, dst = rng.randrange(len(data)), rng.randrange(len(data))
    chunk = data[src : src + size]
    if rng.random() < 0.5:  # overwrite in place: offsets still point at the old places
        out = data[:dst] + chunk + data[dst + len(chunk) :]
        return out[: len(data)], f"copy {len(chunk)} bytes from {src} over {dst}"
    return data[:dst] + chunk + data[dst:], f"insert a copy of {len(chunk)} bytes from {src} at {dst}"


def append_junk(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    size = rng.choice((1, 7, 100, 5000))
    junk = bytes(rng.randrange(256) for _ in range(size)) if rng.random() < 0.5 else data[:size]
    return data + junk, f"append {size} bytes"


RANDOM_MUTATORS: tuple[Mutator, ...] = (flip_bytes, truncate, zero_block, duplicate_region, append_junk)


def random_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    mutator = rng.choice(RANDOM_MUTATORS)
    return mutator(data, rng)


# --------------------------------------------------------------------------- TFLite structure


@dataclass(frozen=True)
class Field:
    """One mutable spot of a flatbuffer: where, how it is encoded, and what it means."""

    pos: int
    fmt: str  # struct format: B b H i I Q f
    label: str


# Table schemas, enough to reach every count, index, dimension and offset (slot -> (name, kind)).
# kind: a struct format for a scalar, "[x" a vector of scalars x, "T:Name" a table, "[T:Name" a
# vector of tables, "s" a string, "G" a table of unknown schema (builtin options).
_SCHEMA: dict[str, dict[int, tuple[str, str]]] = {
    "Model": {
        4: ("version", "I"),
        6: ("operator_codes", "[T:OperatorCode"),
        8: ("subgraphs", "[T:SubGraph"),
        10: ("description", "s"),
        12: ("buffers", "[T:Buffer"),
        14: ("metadata_buffer", "[i"),
        16: ("metadata", "[T:Metadata"),
        18: ("signature_defs", "[T:SignatureDef"),
    },
    "OperatorCode": {4: ("deprecated_builtin_code", "b"), 8: ("version", "i"), 10: ("builtin_code", "i")},
    "SubGraph": {
        4: ("tensors", "[T:Tensor"),
        6: ("inputs", "[i"),
        8: ("outputs", "[i"),
        10: ("operators", "[T:Operator"),
    },
    "Tensor": {
        4: ("shape", "[i"),
        6: ("type", "b"),
        8: ("buffer", "I"),
        12: ("quantization", "T:QuantizationParameters"),
        14: ("is_variable", "B"),
        18: ("shape_signature", "[i"),
    },
    "Operator": {
        4: ("opcode_index", "I"),
        6: ("inputs", "[i"),
        8: ("outputs", "[i"),
        10: ("builtin_options_type", "B"),
        12: ("builtin_options", "G"),
        20: ("intermediates", "[i"),
    },
    "Buffer": {4: ("data", "[B"), 6: ("offset", "Q"), 8: ("size", "Q")},
    "QuantizationParameters": {
        4: ("min", "[f"),
        6: ("max", "[f"),
        8: ("scale", "[f"),
        10: ("zero_point", "[q"),
        16: ("quantized_dimension", "i"),
    },
    "Metadata": {6: ("buffer", "I")},
    "SignatureDef": {
        4: ("inputs", "[T:TensorMap"),
        6: ("outputs", "[T:TensorMap"),
        10: ("subgraph_index", "I"),
    },
    "TensorMap": {6: ("tensor_index", "I")},
}
_MAX_ELEMENTS = 64  # per vector: enough for every dimension and index, not every weight


def tflite_fields(data: bytes) -> list[Field]:
    """Every count, index, dimension, scalar, offset and vtable entry of a valid .tflite file."""
    buf = _Buffer(data)
    fields: list[Field] = [Field(0, "I", "root offset")]
    _walk(buf, buf.table(buf.follow(0)), "Model", "model", fields)
    return fields


def _walk(buf: _Buffer, table: _Table, schema: str, label: str, fields: list[Field]) -> None:
    fields.append(Field(table.pos, "i", f"{label}.<vtable offset>"))
    fields.append(Field(table.vtable, "H", f"{label}.<vtable size>"))
    for slot, (name, kind) in _SCHEMA[schema].items():
        where = f"{label}.{name}"
        if slot < table.vsize:
            fields.append(Field(table.vtable + slot, "H", f"{where}.<field offset>"))
        pos = table._field(slot)
        if pos is None:
            continue
        if kind == "G":  # unknown schema: its vtable offsets and first scalar bytes
            fields.append(Field(pos, "I", f"{where}.<offset>"))
            options = buf.table(buf.follow(pos))
            for s in range(4, options.vsize, 2):
                value_pos = options._field(s)
                if value_pos is not None:
                    fields.append(Field(value_pos, "B", f"{where}.field{(s - 4) // 2}"))
            continue
        if not kind.startswith(("[", "T:", "s")):
            fields.append(Field(pos, kind, where))
            continue
        fields.append(Field(pos, "I", f"{where}.<offset>"))
        target = buf.follow(pos)
        if kind.startswith("T:"):
            _walk(buf, buf.table(target), kind[2:], where, fields)
            continue
        fields.append(Field(target, "I", f"{where}.<length>"))
        if kind == "s":
            continue
        length = int(buf.scalar(target, "I"))
        element = kind[1:]
        if element.startswith("T:"):
            for i in range(min(length, _MAX_ELEMENTS)):
                slot_pos = target + 4 + 4 * i
                fields.append(Field(slot_pos, "I", f"{where}[{i}].<offset>"))
                _walk(buf, buf.table(buf.follow(slot_pos)), element[2:], f"{where}[{i}]", fields)
            continue
        size = struct.calcsize("<" + element)
        if element == "B":  # buffer bytes: only small constants (shape vectors), read as int32s
            if length <= 64:
                fields.extend(Field(target + 4 + 4 * i, "i", f"{where}.i32[{i}]") for i in range(length // 4))
            continue
        fields.extend(Field(target + 4 + size * i, element, f"{where}[{i}]") for i in range(min(length, 16)))


def _interesting(fmt: str, old: float, size: int, rng: random.Random) -> float:
    if fmt == "f":
        return rng.choice((0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e30, 1e-30, -1.0, old * 2))
    bits = struct.calcsize("<" + fmt) * 8
    signed = fmt.islower()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    candidates = [0, 1, 2, 3, 4, 7, 8, 255, 256, 1 << 15, 1 << 16, 1 << 24, hi, lo, hi - 1, size, size - 4]
    candidates += [-1, -2, 1 << 31, (1 << 31) - 1, 1 << 32, 2**63 - 1]
    candidates += [int(old) + d for d in (-4, -2, -1, 1, 2, 4)] + [int(old) * 2, int(old) // 2]
    value = rng.choice(candidates) if rng.random() < 0.85 else rng.randrange(lo, hi + 1)
    return min(max(int(value), lo), hi)


def set_field(data: bytes, field: Field, value: float) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + field.fmt, out, field.pos, value)
    return bytes(out)


def tflite_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Set one to three fields of the flatbuffer to an interesting value."""
    fields = tflite_fields(data)
    # Most picks change what the model says (counts, indices, dimensions, types, scales); the rest
    # its layout (offsets, vtables), which mostly the flatbuffer verifier already catches.
    values = [f for f in fields if "<" not in f.label] or fields
    out, done = data, []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        field = rng.choice(values if rng.random() < 0.6 else fields)
        old = struct.unpack_from("<" + field.fmt, out, field.pos)[0]
        value = _interesting(field.fmt, old, len(data), rng)
        out = set_field(out, field, value)
        done.append(f"{field.label} ({field.fmt}@{field.pos}) {old} -> {value}")
    return out, "; ".join(done)


# --------------------------------------------------------------------------- ONNX structure


def onnx_mutant(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Change one thing the ModelProto says - a dimension, a type, an index-like name, an attribute,
    an op, a version, external data - and serialise it again."""
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    edit = rng.choice(_ONNX_EDITS)
    description = edit(model, rng)
    try:
        out = model.SerializeToString()
    except Exception as exc:  # e.g. an invalid UTF-8 name: mutate the bytes instead
        return random_mutant(data, rng)[0], f"{description} (unserialisable: {type(exc).__name__})"
    return out, description


def _big(rng: random.Random) -> int:
    return rng.choice((0, 1, -1, 2, 10, 784, 1 << 20, (1 << 31) - 1, 1 << 40, -(1 << 62), 2**63 - 1))


def _edit_initializer_dims(model, rng):
    tensor = rng.choice(model.graph.initializer)
    dims = list(tensor.dims)
    if dims and rng.random() < 0.7:
        i = rng.randrange(len(dims))
        dims[i] = _big(rng)
    elif rng.random() < 0.5:
        dims.append(_big(rng))
    else:
        dims = dims[:-1]
    del tensor.dims[:]
    tensor.dims.extend(dims)
    return f"initializer {tensor.name} dims -> {dims}"


def _edit_initializer_type(model, rng):
    tensor = rng.choice(model.graph.initializer)
    old, tensor.data_type = tensor.data_type, rng.choice((0, 1, 2, 3, 6, 7, 8, 10, 11, 16, 21, 22, 99))
    return f"initializer {tensor.name} data_type {old} -> {tensor.data_type}"


def _edit_initializer_data(model, rng):
    tensor = rng.choice(model.graph.initializer)
    if tensor.raw_data:
        raw = tensor.raw_data
        cut = rng.choice((0, 1, len(raw) // 2, len(raw) - 1, len(raw) + 4))
        tensor.raw_data = raw[:cut] if cut <= len(raw) else raw + bytes(cut - len(raw))
        return f"initializer {tensor.name} raw_data {len(raw)} -> {len(tensor.raw_data)} bytes"
    if tensor.data_type == 7 or tensor.int64_data:  # the Reshape target shape lives here
        values = list(tensor.int64_data) or [0]
        values[rng.randrange(len(values))] = _big(rng)
        del tensor.int64_data[:]
        tensor.int64_data.extend(values)
        return f"initializer {tensor.name} int64_data -> {values}"
    tensor.ClearField("float_data")
    tensor.ClearField("int32_data")
    return f"initializer {tensor.name} typed data cleared"


def _edit_shape_values(model, rng):
    """The Reshape target shape is an int64 initializer: set it to something else."""
    import numpy as np
    from onnx import numpy_helper

    shapes = [t for t in model.graph.initializer if t.data_type == 7]
    if not shapes:
        return _edit_initializer_dims(model, rng)
    tensor = rng.choice(shapes)
    values = numpy_helper.to_array(tensor).astype(np.int64).ravel().tolist()
    values[rng.randrange(len(values))] = _big(rng)
    tensor.CopyFrom(numpy_helper.from_array(np.array(values, np.int64).reshape(tensor.dims), tensor.name))
    return f"shape initializer {tensor.name} -> {values}"


def _edit_io_shape(model, rng):
    value = rng.choice([*model.graph.input, *model.graph.output])
    dims = value.type.tensor_type.shape.dim
    if not dims:
        return "io without dims"
    dim = rng.choice(dims)
    dim.dim_value = _big(rng) if rng.random() < 0.8 else 0
    return f"{value.name} dim -> {dim.dim_value}"


def _edit_io_type(model, rng):
    value = rng.choice([*model.graph.input, *model.graph.output])
    old = value.type.tensor_type.elem_type
    value.type.tensor_type.elem_type = rng.choice((0, 2, 3, 6, 7, 8, 10, 11, 99))
    return f"{value.name} elem_type {old} -> {value.type.tensor_type.elem_type}"


def _edit_node_op(model, rng):
    node = rng.choice(model.graph.node)
    old = node.op_type
    node.op_type = rng.choice(
        ("Add", "MatMul", "Gemm", "Softmax", "Relu", "Reshape", "Identity", "Transpose", "Concat", "Expand",
         "Tile", "ConstantOfShape", "Loop", "If", "Gather", "Resize", "Pad", "", "NoSuchOp", "Conv")
    )  # fmt: skip
    if rng.random() < 0.2:
        node.domain = rng.choice(("com.microsoft", "ai.onnx.ml", "custom.domain"))
    return f"node {node.name or old} op {old} -> {node.domain}.{node.op_type}"


def _edit_node_io(model, rng):
    node = rng.choice(model.graph.node)
    names = [n for other in model.graph.node for n in (*other.input, *other.output)]
    names += [t.name for t in model.graph.initializer] + ["", "no_such_tensor"]
    target = node.input if (rng.random() < 0.6 and node.input) else node.output
    action = rng.choice(("replace", "drop", "add"))
    if action == "replace" and target:
        i = rng.randrange(len(target))
        target[i] = rng.choice(names)
    elif action == "drop" and target:
        del target[rng.randrange(len(target))]
    else:
        target.append(rng.choice(names))
    return f"node {node.name or node.op_type} {action} an input/output -> {list(target)}"


def _edit_attribute(model, rng):
    from onnx import helper

    node = rng.choice(model.graph.node)
    name = rng.choice(("axis", "perm", "transA", "transB", "alpha", "allowzero", "axes", "to"))
    value = rng.choice((_big(rng), [_big(rng)], 0.0, float("nan"), "text"))
    for i, attribute in enumerate(node.attribute):
        if attribute.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))
    return f"node {node.name or node.op_type} attribute {name} = {value!r}"


def _edit_versions(model, rng):
    what = rng.choice(("ir", "opset"))
    if what == "ir":
        model.ir_version = rng.choice((0, 1, 3, 11, 100, 2**62))
        return f"ir_version -> {model.ir_version}"
    entry = rng.choice(model.opset_import)
    entry.version = rng.choice((0, 1, 6, 13, 24, 1000, 2**62))
    return f"opset {entry.domain or 'ai.onnx'} -> {entry.version}"


def _edit_external_data(model, rng):
    from onnx import TensorProto

    tensor = rng.choice(model.graph.initializer)
    tensor.data_location = TensorProto.EXTERNAL
    location = rng.choice(("weights.bin", "../../../../etc/passwd", "/etc/hostname", "/proc/self/environ"))
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    if rng.random() < 0.5:
        tensor.ClearField("raw_data")
    return f"initializer {tensor.name} external data at {location}"


def _edit_graph_structure(model, rng):
    nodes = list(model.graph.node)
    action = rng.choice(("drop", "duplicate", "reverse", "cycle"))
    i = rng.randrange(len(nodes))
    if action == "drop":
        del model.graph.node[i]
    elif action == "duplicate":
        model.graph.node.insert(rng.randrange(len(nodes)), nodes[i])
    elif action == "reverse":
        del model.graph.node[:]
        model.graph.node.extend(reversed(nodes))
    else:  # feed a node its own output
        node = model.graph.node[i]
        if node.input and node.output:
            node.input[0] = node.output[0]
    return f"graph: {action} node {i}"


_ONNX_EDITS = (
    _edit_initializer_dims,
    _edit_initializer_type,
    _edit_initializer_data,
    _edit_shape_values,
    _edit_io_shape,
    _edit_io_type,
    _edit_node_op,
    _edit_node_io,
    _edit_attribute,
    _edit_versions,
    _edit_external_data,
    _edit_graph_structure,
)


def structural_mutant(fmt: str, data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return tflite_mutant(data, rng) if fmt == "tflite" else onnx_mutant(data, rng)


def mutant(fmt: str, kind: str, data: bytes, seed: str) -> tuple[bytes, str]:
    """The mutant ``seed`` names: ``kind`` "random" or "structure"; the same seed, the same bytes."""
    rng = random.Random(seed)
    if kind == "random":
        return random_mutant(data, rng)
    return structural_mutant(fmt, data, rng)
