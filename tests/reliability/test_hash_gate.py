"""The hash gate: an artifact whose bytes differ from its manifest by a single flipped bit is
refused with ``ModelLoadError`` before anything parses it - not the pre-check, not the engine -
unless the caller passes ``verify_hash=False``.

Why it matters: random byte flips crash nothing, but many such mutants still load and run, with
wrong weights (the fuzz tests count them as "ran"; SECURITY.md gives the share). Only the
manifest's sha256 tells them apart.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from mnist_edge.errors import ModelLoadError
from mnist_edge.export import MODEL_TARGETS
from mnist_edge.manifest import manifest_path
from mnist_edge.runtime import BACKENDS, Classifier, load

KINDS = list(MODEL_TARGETS)
IDS = [f"{fmt}-{precision}" for fmt, precision in KINDS]


def _copy(source: Path, folder: Path) -> Path:
    target = folder / source.name
    shutil.copy(source, target)
    shutil.copy(manifest_path(source), manifest_path(target))
    return target


@pytest.fixture
def seen(monkeypatch) -> list[tuple[str, bytes]]:
    """Records every time a pre-check or an engine is handed model bytes."""
    calls: list[tuple[str, bytes]] = []
    for backend in set(BACKENDS.values()):
        check, init = backend.check_file.__func__, backend.__init__

        def spy_check(cls, path, data, _check=check):
            calls.append(("check_file", bytes(data)))
            return _check(cls, path, data)

        def spy_init(self, path, data, *, threads=1, _init=init):
            calls.append(("engine", bytes(data)))
            return _init(self, path, data, threads=threads)

        monkeypatch.setattr(backend, "check_file", classmethod(spy_check))
        monkeypatch.setattr(backend, "__init__", spy_init)
    return calls


def _flip_positions(size: int, seed: str) -> list[int]:
    rng = random.Random(seed)
    # The header (root offset, TFL3 / protobuf tags), the middle, the very last byte, and a spread.
    return sorted({0, 3, 4, 7, size // 2, size - 1, *(rng.randrange(size) for _ in range(10))})


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_a_single_flipped_bit_anywhere_is_refused_before_any_parser(kind, exported, tmp_path, seen):
    path = _copy(exported[kind].path, tmp_path)
    original = path.read_bytes()
    rng = random.Random(f"hash-gate-{kind}")
    for position in _flip_positions(len(original), f"hash-gate-{kind}"):
        damaged = bytearray(original)
        damaged[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(damaged))
        with pytest.raises(ModelLoadError, match=r"does not match its manifest.*verify_hash=False"):
            load(path)
    assert seen == []


@pytest.mark.parametrize("change", ["truncated", "extended"])
def test_a_file_of_another_size_is_refused_before_any_parser(change, exported, tmp_path, seen):
    path = _copy(exported[("onnx", "int8")].path, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-1] if change == "truncated" else data + b"\x00")
    with pytest.raises(ModelLoadError, match="manifest says"):
        load(path)
    assert seen == []


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_verify_hash_false_hands_the_exact_bytes_on(kind, exported, tmp_path, seen):
    """Without the gate the damaged bytes reach the pre-check and, if they pass it, the engine:
    the load may then succeed (wrong weights) or be refused - never anything else."""
    path = _copy(exported[kind].path, tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    path.write_bytes(bytes(damaged))
    try:
        result = load(path, verify_hash=False)
    except ModelLoadError:
        result = None
    assert seen[0] == ("check_file", bytes(damaged))
    assert all(data == bytes(damaged) for _, data in seen)
    assert result is None or isinstance(result, Classifier)


def test_an_untouched_artifact_passes_the_gate(exported, tmp_path, seen):
    path = _copy(exported[("tflite", "int8")].path, tmp_path)
    load(path)
    assert [what for what, _ in seen] == ["check_file", "engine"]
