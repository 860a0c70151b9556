"""Hostile array inputs, property-tested: whatever an app passes, the runtime gives the canonical
answer or an InputError - never an engine error, never NaN, and every engine decides alike.

The oracle below is written from the runtime's documented contract, not from its code: shapes
(28, 28), (784,), (N, 28, 28), (N, 784); integers in 0..255 or floats in [0, 1], finite; lists
are whatever ``np.asarray`` makes of them. An accepted input must give results identical to its
canonical form (a C-contiguous uint8 or float32 array of shape (N, 28, 28)) on every artifact.

Hypothesis draws a recipe (shape, dtype, one hostile value, memory layout, container) and numpy
builds the pixels, so examples are cheap and shrink to a readable case. The seed is fixed
(``derandomize``); ``MNIST_EDGE_HYPOTHESIS_EXAMPLES`` sets the count of the slow run (default 5000).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

from mnist_edge.errors import InputError
from mnist_edge.export import MODEL_TARGETS
from mnist_edge.runtime import Classifier, load

FAST_EXAMPLES = 400
SLOW_EXAMPLES = int(os.environ.get("MNIST_EDGE_HYPOTHESIS_EXAMPLES", "5000"))
KINDS = list(MODEL_TARGETS)

INTEGER_DTYPES = ["uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64", ">u2", ">i8"]
FLOAT_DTYPES = ["float16", "float32", "float64", ">f4", ">f8"]
OTHER_DTYPES = ["bool", "complex64", "complex128", "object", "<U3", "S2", "datetime64[s]", "timedelta64[ms]"]
VALID_SHAPES = ["n,28,28", "n,784", "28,28", "784"]
NEAR_MISSES = [
    (27, 28),
    (28, 29),
    (28, 28, 1),
    (1, 28, 28, 1),
    (1, 1, 28, 28),
    (2, 785),
    (783,),
    (28,),
    (0,),
    (0, 0),
]


@dataclass(frozen=True)
class Recipe:
    shape: tuple[int, ...]
    dtype: str
    hostile: str
    layout: str
    container: str
    seed: int


@st.composite
def recipes(draw: st.DrawFn) -> Recipe:
    n = draw(st.integers(0, 5))
    form = draw(st.sampled_from([*VALID_SHAPES, "near miss", "any shape"]))
    if form == "near miss":
        shape = draw(st.sampled_from(NEAR_MISSES))
    elif form == "any shape":
        shape = draw(array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12))
    else:
        shape = tuple(n if d == "n" else int(d) for d in form.split(","))
    dtype = draw(st.sampled_from([*INTEGER_DTYPES, *FLOAT_DTYPES, *OTHER_DTYPES]))
    hostile = draw(
        st.sampled_from(
            ["none", "none", "nan", "inf", "-inf", "huge", "negative", "just above", "just below", "extremes"]
        )
    )
    layout = draw(st.sampled_from(["c", "fortran", "strided", "reversed", "read-only", "byteswapped"]))
    container = draw(st.sampled_from(["ndarray", "ndarray", "list", "tuple of arrays", "matrix", "ragged"]))
    return Recipe(shape, dtype, hostile, layout, container, draw(st.integers(0, 2**32 - 1)))


def build(recipe: Recipe) -> Any:
    """The input the recipe describes: pixels of the dtype, one hostile value, the layout, the container."""
    rng = np.random.default_rng(recipe.seed)
    dtype = np.dtype(recipe.dtype)
    size = int(np.prod(recipe.shape))
    if dtype.kind in "iu":
        values = rng.integers(0, 256, size).astype(dtype)
    elif dtype.kind == "f":
        values = rng.integers(0, 256, size).astype(np.float64) / 255.0
        values = values.astype(dtype)
    elif dtype.kind == "U" or dtype.kind == "S":
        values = rng.integers(0, 256, size).astype(str).astype(dtype)
    elif dtype.kind in "Mm":
        values = rng.integers(0, 256, size).astype(dtype)
    elif dtype.kind == "O":
        values = np.array([int(v) for v in rng.integers(0, 256, size)] + [None], dtype=object)[:size]
    else:
        values = rng.integers(0, 256, size).astype(dtype)
    if size:
        values[int(rng.integers(size))] = _hostile_value(recipe.hostile, dtype, values)
    array = values.reshape(recipe.shape)
    array = _layout(array, recipe.layout)
    return _container(array, recipe.container)


def _hostile_value(kind: str, dtype: np.dtype, values: np.ndarray) -> Any:
    """One value that should (or, for "none", should not) get the input refused; valid if the dtype
    cannot hold it."""
    keep = values[0]
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        return {
            "nan": np.nan,
            "inf": np.inf,
            "-inf": -np.inf,
            "huge": finfo.max,
            "negative": -finfo.tiny,
            "just above": np.nextafter(dtype.type(1), dtype.type(2)),
            "just below": -0.0,  # negative zero is a valid 0
            "extremes": dtype.type(1),
        }.get(kind, keep)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        candidates = {
            "huge": info.max,
            "negative": -1,
            "just above": 256,
            "just below": -1,
            "extremes": 255,
            "nan": info.min,
            "inf": info.max,
            "-inf": info.min,
        }
        value = candidates.get(kind)
        return value if value is not None and info.min <= value <= info.max else keep
    return keep


def _layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "strided" and array.ndim:
        wide = np.zeros((*array.shape[:-1], array.shape[-1] * 2), dtype=array.dtype)
        wide[..., ::2] = array
        return wide[..., ::2]
    if layout == "reversed" and array.ndim:
        return np.ascontiguousarray(array[..., ::-1])[..., ::-1]
    if layout == "read-only":
        array = array.copy()
        array.setflags(write=False)
        return array
    if layout == "byteswapped" and array.dtype.kind in "iuf":
        return array.astype(array.dtype.newbyteorder())
    return array


def _container(array: np.ndarray, container: str) -> Any:
    if container == "list":
        return array.tolist()
    if container == "tuple of arrays" and array.ndim >= 1:
        return tuple(array)
    if container == "matrix" and array.ndim == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return np.asmatrix(array)
    if container == "ragged" and array.ndim >= 2 and array.shape[0] >= 2 and array.shape[-1] >= 1:
        rows = array.tolist()
        rows[-1] = rows[-1][:-1]
        return rows
    return array


def canonical(images: Any) -> np.ndarray | None:
    """The oracle: the C-contiguous uint8/float32 (N, 28, 28) batch ``images`` stands for, or None if
    the runtime must refuse it."""
    if isinstance(images, (str, bytes)):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(images)
    except (ValueError, TypeError):  # ragged
        return None
    if array.shape in ((28, 28), (784,)):
        n = 1
    elif (array.ndim == 3 and array.shape[1:] == (28, 28)) or (array.ndim == 2 and array.shape[1] == 784):
        n = array.shape[0]
    else:
        return None
    kind = array.dtype.kind
    values = np.asarray(array)
    if kind in "iu":
        if values.size and (int(values.min()) < 0 or int(values.max()) > 255):
            return None
        target = np.uint8
    elif kind == "f":
        if values.size and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            return None
        target = np.float32
    else:  # booleans, complex, strings, objects, dates: refused
        return None
    return np.ascontiguousarray(values.astype(target).reshape(n, 28, 28))


@pytest.fixture(scope="module")
def classifiers(exported) -> dict[tuple[str, str], Classifier]:
    return {kind: load(exported[kind].path) for kind in KINDS}


def check(recipe: Recipe, classifiers: dict[tuple[str, str], Classifier]) -> None:
    images = build(recipe)
    want = canonical(images)
    before = images.copy() if isinstance(images, np.ndarray) else None
    decisions = {}
    for kind, clf in classifiers.items():
        try:
            got = clf.predict_proba(images)
            labels = clf.predict(images)
        except InputError:
            decisions[kind] = "refused"
            continue
        # Anything but InputError propagates and fails the test: that is an engine error leaking out.
        decisions[kind] = "accepted"
        assert want is not None, f"{kind} accepted what must be refused: {recipe}"
        assert got.dtype == np.float32 and got.shape == (len(want), 10), (kind, got.shape)
        assert np.isfinite(got).all(), f"{kind} returned NaN/inf for {recipe}"
        np.testing.assert_array_equal(got, clf.predict_proba(want), err_msg=f"{kind}: {recipe}")
        np.testing.assert_array_equal(labels, clf.predict(want), err_msg=f"{kind}: {recipe}")
        if len(got):
            np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)
    event("accepted" if want is not None else "refused")
    if want is not None:
        assert set(decisions.values()) == {"accepted"}, f"refused a valid input: {decisions} for {recipe}"
    else:
        assert set(decisions.values()) == {"refused"}, f"{decisions} for {recipe}"
    if before is not None:
        np.testing.assert_array_equal(images, before)  # never written to


COMMON = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@settings(max_examples=FAST_EXAMPLES, **COMMON)
@given(recipe=recipes())
def test_hostile_inputs_give_canonical_results_or_input_error(classifiers, recipe):
    check(recipe, classifiers)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **COMMON)
@given(recipe=recipes())
def test_hostile_inputs_long_run(classifiers, recipe):
    check(recipe, classifiers)


@pytest.mark.parametrize(
    "images",
    [
        np.full((2, 28, 28), np.nan, np.float32),
        np.full((1, 784), np.inf),
        np.full((28, 28), -0.0),
        np.nextafter(np.ones((28, 28), np.float32), 2),
        np.full((28, 28), 1e-45, np.float32),  # a subnormal: valid
        np.full((3, 28, 28), np.iinfo(np.int64).max),
        np.full((3, 784), np.iinfo(np.uint64).max, np.uint64),
        np.zeros((0, 784), np.float16),
        [[0.5] * 784] * 3,
        [[1] * 784, [0] * 784],
        [[True] * 784],
        None,
        {"pixels": [0] * 784},
        (v for v in range(784)),
        memoryview(bytes(range(256)) * 3 + bytes(16)),
        b"\x00" * 784,
        "0" * 784,
    ],
    ids=[
        "nan",
        "inf",
        "negative zero",
        "above 1 by one ulp",
        "subnormal",
        "int64 max",
        "uint64 max",
        "empty",
        "list",
        "int list",
        "bool list",
        "none",
        "dict",
        "generator",
        "memoryview",
        "bytes",
        "str",
    ],
)
def test_named_edge_cases(classifiers, images):
    """The cases a reader looks for first, outside hypothesis's choice."""
    want = canonical(images)
    for kind, clf in classifiers.items():
        if want is None:
            with pytest.raises(InputError):
                clf.predict_proba(images)
        else:
            got = clf.predict_proba(images)
            assert np.isfinite(got).all(), kind
            np.testing.assert_array_equal(got, clf.predict_proba(want))
