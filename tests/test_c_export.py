"""The C target: generated from the int8 .tflite, warning-free, bit-exact with LiteRT and TFLM,
and never compiled unless it is exactly what mnist-edge generates.

Fast tests compile the tiny model's C with the host compiler and compare a few hundred images;
the slow ones run ``verify`` on the full 10,000 test digits plus 20,000 random images.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_edge._mnist import NUM_CLASSES, PIXELS
from mnist_edge.errors import ExportError, ModelLoadError, ToolchainError
from mnist_edge.export import DEFAULT_PRECISION, TARGETS, c_graph, expand, export_many
from mnist_edge.export.c import ROUNDINGS, generate
from mnist_edge.manifest import read_manifest
from mnist_edge.parity import c_code

ROUNDING_NAMES = sorted(ROUNDINGS)
FAST_IMAGES, FAST_RANDOM = 300, 700


def _compiler() -> str:
    try:
        return c_code.find_compiler()
    except ToolchainError as exc:
        pytest.skip(f"{exc}")


def _needs_engine(rounding: str) -> None:
    if rounding == "tflm":
        pytest.importorskip("tflite_micro", reason="tflite-micro not installed: pip install -e '.[dev]'")


@pytest.fixture(scope="session")
def int8_tflite(exported) -> Path:
    return exported["tflite", "int8"].path


@pytest.fixture(scope="session")
def c_folder(tmp_path_factory, exported, tiny_model_path) -> Path:
    """A folder with the tiny model, its int8 .tflite (+ manifest) and the C generated from it."""
    folder = tmp_path_factory.mktemp("c_export")
    source = exported["tflite", "int8"].path
    for path in (tiny_model_path, source, source.with_name(source.name + ".json")):
        shutil.copy(path, folder)
    export_many(folder / tiny_model_path.name, "c", None, folder)
    return folder


@pytest.fixture(scope="session")
def libraries(int8_tflite):
    """The tiny model's C for each rounding, compiled once with every warning an error."""
    compiled: dict[str, c_code.CLibrary] = {}

    def get(rounding: str) -> c_code.CLibrary:
        _compiler()
        if rounding not in compiled:
            source = generate(int8_tflite.read_bytes(), rounding=rounding)
            compiled[rounding] = c_code.CLibrary(source, flags=(*c_code.COMPILE_FLAGS, *c_code.WARNING_FLAGS))
        return compiled[rounding]

    yield get
    for library in compiled.values():
        library.close()


@pytest.fixture
def test_images(mnist) -> np.ndarray:
    rng = np.random.default_rng(7)
    picked = mnist.x_test[rng.choice(len(mnist.x_test), FAST_IMAGES, replace=False)]
    return np.concatenate([picked, rng.integers(0, 256, (FAST_RANDOM, 28, 28), dtype=np.uint8)])


# --------------------------------------------------------------------------- the generated code


@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_generated_c_is_bit_exact_with_its_engine(int8_tflite, libraries, test_images, rounding):
    _needs_engine(rounding)
    produced, tops = libraries(rounding).run(test_images)
    expected, engine = c_code.engine_outputs(int8_tflite.read_bytes(), test_images, rounding)
    assert produced.shape == (len(test_images), NUM_CLASSES)
    assert np.array_equal(produced, expected), f"{(produced != expected).sum()} bytes differ from {engine}"
    assert np.array_equal(tops, produced.argmax(axis=1))
    assert produced.astype(int).sum(axis=1).min() >= 200  # probabilities in 1/256: rows sum to ~256


def test_the_two_roundings_are_different_programs(int8_tflite):
    data = int8_tflite.read_bytes()
    litert, tflm = (generate(data, rounding=r).c_text for r in ("litert", "tflm"))
    floats = re.compile(r"\bfloat\s+\w+\s*[=;\[]|\(float\)")
    assert "_exps[256]" in litert and floats.search(litert)
    assert not floats.search(tflm)  # TFLM's kernels are integer-only: no FPU needed


@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_generated_c_compiles_without_a_warning(libraries, rounding):
    library = libraries(rounding)  # -Wall -Wextra -Wconversion -pedantic -Werror
    assert {"-Wconversion", "-pedantic", "-Werror"} <= set(c_code.WARNING_FLAGS)
    assert library.warnings.strip() == ""


def test_header_declares_exactly_the_entry_point_with_its_prefix(int8_tflite):
    source = generate(int8_tflite.read_bytes(), prefix="digits")
    declarations = re.findall(r"^[ \t]*\w[\w \t*]*\(.*\);", source.h_text, flags=re.MULTILINE)
    assert declarations == [
        f"int digits_infer(const uint8_t pixels[{PIXELS}], uint8_t probabilities[{NUM_CLASSES}]);"
    ]
    assert f"#define DIGITS_STACK_BYTES {source.arena_bytes}" in source.h_text
    assert "digits_infer(const uint8_t" in source.c_text
    assert '#include "model.int8.h"' in source.c_text


def test_c_is_freestanding_const_and_without_mutable_statics(int8_tflite):
    text = generate(int8_tflite.read_bytes()).c_text
    assert set(re.findall(r"#include\s*[<\"]([^>\"]+)", text)) == {
        "stddef.h",
        "stdint.h",
        "model.int8.h",
        "arm_acle.h",
    }
    statics = re.findall(r"^[ \t]*static\b[^(\n]*$", text, flags=re.MULTILINE)  # data, not functions
    assert statics and all(re.match(r"\s*static const\b", line) for line in statics), statics
    for word in ("malloc", "expf", "printf", "memcpy("):
        assert word not in text.replace("__builtin_memcpy(", "")


def test_generation_is_deterministic_and_names_its_source(int8_tflite):
    data = int8_tflite.read_bytes()
    first, second = generate(data), generate(data)
    assert first.c_bytes == second.c_bytes and first.h_bytes == second.h_bytes
    assert first.macs == 784 * 300 + 300 * 100 + 100 * 10
    assert first.arena_bytes == 300 + 100
    assert first.constant_bytes < len(data)  # flash for the model: below the .tflite's size


def test_an_operator_without_a_kernel_is_named(int8_tflite, monkeypatch):
    monkeypatch.delitem(c_graph.LOWERINGS, "SOFTMAX")
    with pytest.raises(
        ExportError, match=r"does not support operator SOFTMAX \(operator 5\).*FULLY_CONNECTED"
    ):
        generate(int8_tflite.read_bytes())


def test_a_cnn_beyond_what_train_makes_is_refused_naming_the_operator_and_its_option(cnn_exported):
    # The generator has kernels for the operators of train's MLP and CNN; this file's first
    # convolution clamps at 6 (a float bound the two engines round differently).
    with pytest.raises(ExportError, match=r"CONV_2D \(operator \d+\) has fused activation RELU6"):
        generate(cnn_exported["tflite", "int8"].path.read_bytes())


def test_a_float_model_is_refused_with_what_to_do(exported):
    with pytest.raises(ExportError, match=r"float32.*--quantize int8"):
        generate(exported["tflite", "fp32"].path.read_bytes())


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"rounding": "banker"}, "unknown rounding 'banker': use one of litert, tflm"),
        ({"prefix": "9lives"}, "not a usable C name prefix"),
        ({"prefix": "_hidden"}, "not a usable C name prefix"),
        ({"prefix": "a-b"}, "not a usable C name prefix"),
    ],
)
def test_bad_options_are_export_errors(int8_tflite, options, needle):
    with pytest.raises(ExportError, match=re.escape(needle)):
        generate(int8_tflite.read_bytes(), **options)


# --------------------------------------------------------------------------- the export target


def test_c_is_an_int8_target_built_only_when_named():
    assert TARGETS["c", "int8"].requires == ("tflite", "int8")
    assert [(t.format, t.precision) for t in expand("c")] == [("c", "int8")]
    assert DEFAULT_PRECISION["c"] == "int8"
    assert all(t.format != "c" for t in expand("all", "all"))
    with pytest.raises(ExportError, match=r"c fp32 is not an export.*c: int8"):
        expand("c", "none")


def test_export_writes_c_header_and_manifest_reusing_the_int8_tflite(c_folder, exported):
    manifest = read_manifest(c_folder / "model.int8.c")
    assert manifest is not None and (manifest.format, manifest.precision) == ("c", "int8")
    origin = manifest.generated_from
    tflite = exported["tflite", "int8"]
    assert origin["artifact"] == "model.int8.tflite" and origin["sha256"] == tflite.manifest.sha256
    assert origin["rounding"] == "litert" and origin["prefix"] == "mnist_edge"
    assert (c_folder / "model.int8.h").read_bytes() and origin["header"] == "model.int8.h"
    assert manifest.source_model_sha256 == tflite.manifest.source_model_sha256
    assert manifest.input.shape == (PIXELS,) and manifest.output.dtype == "uint8"
    # reused, not re-exported
    reused = read_manifest(c_folder / "model.int8.tflite")
    assert (reused.sha256, reused.created_at) == (tflite.manifest.sha256, tflite.manifest.created_at)


def test_check_compiles_what_it_regenerated_and_counts_differing_bytes(c_folder, test_images):
    _compiler()
    result, produced = c_code.check(c_folder / "model.int8.c", test_images[:50], random=100)
    assert result.passed and result.differing_bytes == 0
    assert (result.images, result.random_images) == (50, 100)
    assert produced.shape == (50, NUM_CLASSES)
    assert "0 differing bytes" in result.describe()


def _tampered_copy(c_folder: Path, tmp_path: Path) -> Path:
    for path in c_folder.iterdir():
        shutil.copy(path, tmp_path)
    return tmp_path / "model.int8.c"


@pytest.mark.parametrize(
    ("tamper", "needle"),
    [
        (
            lambda f: f.write_text(f.read_text() + "\n/* extra */\n"),
            "model.int8.c is not the C mnist-edge generates",
        ),
        (
            lambda f: f.with_suffix(".h").write_text(f.with_suffix(".h").read_text() + "\n"),
            "model.int8.h is not the C mnist-edge generates",
        ),
        (lambda f: f.with_name("model.int8.tflite").write_bytes(b"TFL3" * 8), "changed since model.int8.c"),
        (lambda f: f.with_name("model.int8.c.json").unlink(), "has no manifest"),
    ],
)
def test_c_that_mnist_edge_did_not_generate_is_never_compiled(
    c_folder, tmp_path, monkeypatch, tamper, needle
):
    c_path = _tampered_copy(c_folder, tmp_path)
    tamper(c_path)
    monkeypatch.setattr(c_code, "CLibrary", lambda *a, **k: pytest.fail("compiled a file it should refuse"))
    with pytest.raises(ModelLoadError, match=re.escape(needle)):
        c_code.check(c_path, np.zeros((1, 28, 28), np.uint8), random=0)


def test_verify_fails_the_row_of_edited_c(c_folder, tmp_path, tiny_model_path, mnist):
    from mnist_edge.parity import verify

    c_path = _tampered_copy(c_folder, tmp_path)
    c_path.write_text(c_path.read_text().replace("return argmax", "return 1 + argmax"))
    report = verify([c_path], tmp_path / tiny_model_path.name, data=(mnist.x_test[:20], mnist.y_test[:20]))
    (row,) = report.rows
    assert not row.passed and "not the C mnist-edge generates" in row.reasons[0]


def test_a_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc-1234")
    with pytest.raises(
        ToolchainError, match=r"no C compiler found \(tried \$CC=no-such-cc-1234\).*apt-get install gcc"
    ):
        c_code.find_compiler()
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ToolchainError, match="tried cc, gcc, clang"):
        c_code.find_compiler()


def test_find_artifacts_lists_generated_c_only_when_asked(c_folder, tmp_path):
    from mnist_edge.parity import find_artifacts

    assert "model.int8.c" not in [p.name for p in find_artifacts(c_folder)]
    assert "model.int8.c" in [p.name for p in find_artifacts(c_folder, c_code=True)]
    for path in c_folder.iterdir():
        shutil.copy(path, tmp_path)
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")  # someone's own source
    assert [p.name for p in find_artifacts(tmp_path, c_code=True) if p.suffix == ".c"] == ["model.int8.c"]


# --------------------------------------------------------------------------- the full check


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ROUNDING_NAMES)
def test_verify_checks_c_on_10000_test_and_20000_random_images(
    tmp_path, exported, tiny_model_path, mnist, rounding
):
    from mnist_edge.parity import verify

    _compiler()
    _needs_engine(rounding)
    source = exported["tflite", "int8"].path
    for path in (tiny_model_path, source, source.with_name(source.name + ".json")):
        shutil.copy(path, tmp_path)
    (result,) = [
        r for r in export_many(tmp_path / tiny_model_path.name, "c", None, tmp_path, rounding=rounding)
    ]
    tflite = tmp_path / source.name
    report = verify([result.path, tflite], tmp_path / tiny_model_path.name, data=mnist)
    c_row, tflite_row = report.rows
    assert c_row.bit_exact is not None
    assert (c_row.bit_exact["images"], c_row.bit_exact["random_images"]) == (10_000, c_code.RANDOM_IMAGES)
    assert c_row.bit_exact["differing_bytes"] == 0 and c_row.bit_exact["rounding"] == rounding
    # The tiny model's int8 outputs may miss a tolerance; the C must do exactly what the model does
    # (with TFLM's rounding, up to the few images where the two engines differ).
    if rounding == "litert":
        assert (c_row.passed, c_row.reasons) == (tflite_row.passed, tflite_row.reasons)
        for metric in ("accuracy", "agreement_pct", "max_prob_diff", "mean_prob_diff", "worst_class"):
            assert getattr(c_row, metric) == getattr(tflite_row, metric), metric
    else:
        assert abs(c_row.accuracy - tflite_row.accuracy) <= 0.001
    assert read_manifest(result.path).parity["bit_exact"]["differing_bytes"] == 0


@pytest.mark.slow
def test_export_c_exports_the_int8_tflite_first_when_there_is_none(tmp_path, tiny_model_path, mnist):
    results = export_many(tiny_model_path, "c", None, tmp_path, data=mnist, prefix="tiny")
    assert [(r.format, r.precision) for r in results] == [("tflite", "int8"), ("c", "int8")]
    assert "int tiny_infer(" in (tmp_path / "model.int8.h").read_text()
    assert read_manifest(tmp_path / "model.int8.c").generated_from["sha256"] == results[0].manifest.sha256


def _boundary_images(layer: c_graph.Dense, wanted: int, rng: np.random.Generator) -> np.ndarray:
    """Images that put a first-layer accumulator where float32 requantisation (LiteRT's XNNPACK)
    and TFLite's single-rounding integer requantisation give different levels."""
    images = []
    for row in rng.permutation(layer.rows):
        multiplier, shift = int(layer.multipliers[row]), int(layer.shifts[row])
        scale = np.float32(layer.float_scales[row])
        acc = np.arange(0, int(256 / float(scale)), dtype=np.int64)
        as_float = np.rint((acc.astype(np.float32) * scale).astype(np.float32)).astype(np.int64)
        single = (acc * multiplier + (1 << (30 - shift))) >> (31 - shift)
        differ = acc[(as_float != single) & (as_float <= 255)]
        for target in differ[:2]:
            pixels = _reach(layer.weights[row].astype(np.int64), int(layer.bias[row]), int(target), rng)
            if pixels is not None:
                images.append(pixels)
        if len(images) >= wanted:
            break
    return np.array(images, np.uint8)


def _reach(w: np.ndarray, bias: int, target: int, rng: np.random.Generator) -> np.ndarray | None:
    """Pixels p (0..255) with bias + w @ p == target, found greedily, or None."""
    for _ in range(10):
        p = rng.integers(0, 40, w.size).astype(np.int64)
        acc = bias + int(w @ p)
        order = rng.permutation(w.size)
        for exact in (False, True):
            for i in order:
                need = target - acc
                if need == 0 or w[i] == 0 or (exact and need % w[i]):
                    continue
                step = int(np.clip(need // w[i], -p[i], 255 - p[i]))
                p[i] += step
                acc += step * int(w[i])
        if acc == target:
            return p
    return None


@pytest.mark.slow
def test_litert_rounding_is_xnnpacks_float_requantisation(int8_tflite, libraries):
    # On natural images float32 and single-rounding integer requantisation almost never differ,
    # so images are built to land on the accumulators where they do: the C must follow LiteRT.
    data = int8_tflite.read_bytes()
    first = c_graph.read_model(data).layers[0]
    assert isinstance(first, c_graph.Dense)
    images = _boundary_images(first, 200, np.random.default_rng(3))
    assert len(images) >= 100
    produced, _ = libraries("litert").run(images)
    expected, _ = c_code.engine_outputs(data, images, "litert")
    assert np.array_equal(produced, expected), f"{(produced != expected).sum()} bytes differ from LiteRT"
