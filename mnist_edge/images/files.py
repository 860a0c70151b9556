"""Pictures and arrays from files: PNG/JPEG read defensively, ``.npy`` read without pickles, and
the 28x28 digit the model saw written back as a PNG.

Pictures come from elsewhere, so the declared size is checked before a single pixel is decoded
(Pillow itself only warns below ~179 M pixels). A picture is brought down to the pipeline's working
size before it becomes floats, and a JPEG is decoded straight at a reduced scale (libjpeg's DCT
scaling): a 12-megapixel photo costs a fraction of a full decode.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE, PIXEL_SCALE
from mnist_edge.errors import InputError
from mnist_edge.images.fit import WORK_SIDE, fit_digit
from mnist_edge.images.steps import shrink

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: A 50-megapixel photo is the most anyone should need to show us one digit.
MAX_IMAGE_PIXELS = 50_000_000
#: Refuse larger files before reading them (pictures and .npy arrays alike).
MAX_FILE_BYTES = 256 << 20


def load_input(path: str | os.PathLike[str], *, invert: bool | None = None) -> np.ndarray:
    """A picture (PNG/JPEG) as one ``(28, 28)`` uint8 digit, or a ``.npy`` file's array as saved.

    ``.npy`` arrays are returned unchanged (the classifier validates them); pickled object
    arrays are refused.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return load_npy(path)
    if suffix in IMAGE_SUFFIXES:
        return load_image(path, invert=invert)
    raise InputError(f"{path}: unsupported file type {suffix or '(none)'!r}; give a PNG, JPEG or .npy file")


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    path = Path(path)
    _check_file(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:  # pickled object arrays, malformed headers
        raise InputError(f"{path} is not a plain numpy array file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for a zip archive
        raise InputError(f"{path} is not a .npy array (an .npz archive?); save one array with np.save")
    return array


def load_image(source: str | os.PathLike[str] | bytes, *, invert: bool | None = None) -> np.ndarray:
    """Read a PNG/JPEG of any size and return the digit as MNIST would have it: (28, 28) uint8.

    This is exactly what the model is given (``mnist-edge predict --save-inputs`` writes it as a
    PNG). ``source`` is a file's path, or a file's bytes (an upload: messages then say "the
    picture"). ``invert``: True for dark ink on a light background (a drawing, a photo of paper),
    False for light on dark (MNIST's own look), None to decide from the picture.
    """
    gray = read_picture(source)
    try:
        return fit_digit(gray, invert=invert)
    except InputError as exc:
        raise InputError(f"{_name(source)}: {exc}") from None


def read_picture(source: str | os.PathLike[str] | bytes, *, max_side: int = WORK_SIDE) -> np.ndarray:
    """A PNG/JPEG (a path, or a file's bytes) as float32 (H, W) grey levels 0..255, upright (EXIF
    orientation applied), reduced by whole blocks of pixels to at most ``max_side`` on its longer
    side (the picture pipeline's working size: a digit needs no more)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = _name(source)
    if isinstance(source, bytes):
        if not source:
            raise InputError("the picture is empty")
        opened: Path | io.BytesIO = io.BytesIO(source)
    else:
        opened = Path(source)
        _check_file(opened)
    try:
        # Pillow refuses > ~179 M pixels itself, and warns above ~89 M (a DecompressionBombWarning
        # that callers may filter); our own, lower limit is checked on the header before decoding.
        with Image.open(opened, formats=["PNG", "JPEG"]) as image:
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"{path} declares {width}x{height} pixels, over the {MAX_IMAGE_PIXELS:,} limit: "
                    "scale it down first"
                )
            if width == 0 or height == 0:
                raise InputError(f"{path} is an empty ({width}x{height}) picture")
            if image.format == "JPEG" and max(width, height) > max_side:
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale (and straight to grey) far faster.
                scale = max_side / max(width, height)
                mode = "L" if image.mode in ("L", "RGB", "YCbCr") else image.mode
                image.draft(mode, (max(1, int(width * scale)), max(1, int(height * scale))))
            image.load()
            image = ImageOps.exif_transpose(image)
            factor = -(-max(image.size) // max_side)
            if factor > 1 and image.mode in ("L", "RGB", "YCbCr", "CMYK"):
                image = image.convert("L").reduce(factor)  # block means, before any float copy
            return shrink(_to_gray(image), max_side)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(
            f"{path} declares a picture far over the {MAX_IMAGE_PIXELS:,} pixel limit: scale it down first"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{path} is not a PNG or JPEG picture (or it is damaged)") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:  # Pillow's decoder failures
        raise InputError(f"cannot decode {path}: {exc}") from None


def save_digit(digit: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a (28, 28) uint8 digit as a grey PNG (atomically), e.g. what :func:`load_image` returned."""
    from PIL import Image

    from mnist_edge._files import atomic_path

    pixels = np.asarray(digit)
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise InputError(f"a digit is a 2-D uint8 array, got {pixels.dtype} {pixels.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
    return path


def save_digits(images: np.ndarray, folder: str | os.PathLike[str], stem: str) -> list[Path]:
    """Write each 28x28 digit of ``images`` as a PNG in ``folder``: ``<stem>.png`` for one digit,
    ``<stem>-<i>.png`` for a batch. ``images`` is what a classifier is given: (28, 28), (N, 28, 28)
    or (N, 784), uint8 pixels or floats in 0..1 (scaled to 0..255 for the picture)."""
    pixels = np.asarray(images)
    if pixels.dtype != np.uint8:
        pixels = np.rint(np.clip(pixels.astype(np.float64), 0, 1) * PIXEL_SCALE).astype(np.uint8)
    batch = pixels.reshape(-1, *IMAGE_SHAPE)
    folder = Path(folder)
    if pixels.shape == IMAGE_SHAPE:
        return [save_digit(batch[0], folder / f"{stem}.png")]
    return [save_digit(digit, folder / f"{stem}-{i}.png") for i, digit in enumerate(batch)]


def _to_gray(image: Any) -> np.ndarray:
    """Any PNG/JPEG mode -> float32 (H, W) in 0..255. Transparent pictures are put on white."""
    from PIL import Image

    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit PNGs: rescale their range
        values = np.asarray(image, dtype=np.float32)
        lo, hi = float(values.min()), float(values.max())
        return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    if "A" in mode or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3]
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = np.asarray(Image.alpha_composite(white, rgba).convert("L"), dtype=np.float32)
        if np.ptp(flat) < 16 and np.ptp(alpha) >= 16:
            # Ink drawn only in the alpha channel (e.g. white strokes on transparency): use alpha.
            return 255.0 - alpha
        return flat
    return np.asarray(image.convert("L"), dtype=np.float32)


def _name(source: str | os.PathLike[str] | bytes) -> object:
    """How messages name a picture: its path, or "the picture" for bytes."""
    return "the picture" if isinstance(source, bytes) else Path(source)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise InputError(f"{path} is empty")
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path} is not readable (permission denied)")
