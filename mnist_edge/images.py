"""Turn files from outside into MNIST input: a picture becomes a 28x28 digit the way MNIST made them.

MNIST digits are white on black, fitted into a 20x20 box (aspect ratio kept, anti-aliased) and
placed in a 28x28 field so that their centre of mass sits at the centre. A photo or a drawing
has to go through the same steps or the classifier sees something it never learnt. Pictures come
from elsewhere, so they are handled defensively: PNG and JPEG only, and the declared size is
checked before a single pixel is decoded (Pillow itself only warns below ~179 M pixels).
Used by ``mnist-edge predict`` and ``examples/embed.py``; needs Pillow, never TensorFlow.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mnist_edge.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "MAX_FILE_BYTES", "MAX_IMAGE_PIXELS", "fit_digit", "load_image", "load_input"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: A 50-megapixel photo is the most anyone should need to show us one digit.
MAX_IMAGE_PIXELS = 50_000_000
#: Refuse larger files before reading them (pictures and .npy arrays alike).
MAX_FILE_BYTES = 256 << 20
#: The digit's box inside the 28x28 field, as in MNIST.
BOX = 20
FIELD = 28


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

    ``source`` is a file's path, or a file's bytes (an upload: messages then say "the picture").
    ``invert``: True for dark ink on a light background (a drawing, a photo of paper), False for
    light on dark (MNIST's own look), None to decide from the picture's border.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, bytes):
        path: object = "the picture"
        if not source:
            raise InputError("the picture is empty")
        opened: Path | io.BytesIO = io.BytesIO(source)
    else:
        path = opened = Path(source)
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
            image.load()
            image = ImageOps.exif_transpose(image)
            gray = _to_gray(image)
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
    try:
        return fit_digit(gray, invert=invert)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def fit_digit(gray: np.ndarray, *, invert: bool | None = None) -> np.ndarray:
    """A grayscale picture (H, W) in 0..255 -> an MNIST digit (28, 28) uint8, white on black.

    Steps: invert if the background is light, stretch so the background is 0 and the strongest
    ink 255, crop to the ink's bounding box, scale the longer side to 20 px (aspect kept,
    anti-aliased), then paste into 28x28 with the centre of mass at the centre.
    """
    from PIL import Image

    pixels = np.asarray(gray, dtype=np.float32)
    if pixels.ndim != 2 or not pixels.size:
        raise InputError(f"expected a 2-D grayscale picture, got shape {pixels.shape}")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    if invert is None:
        invert = background > 127.5
    if invert:
        pixels = 255.0 - pixels
        background = 255.0 - background
    peak = float(pixels.max())
    if peak - background < 16:  # less than ~6 % contrast: nothing drawn
        raise InputError("no digit found: the picture is blank (or try --invert / --no-invert)")
    pixels = np.clip((pixels - background) * (255.0 / (peak - background)), 0, 255)
    ink = pixels > 8  # ~3 % of full scale: faint anti-aliasing counts, paper noise does not
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    glyph = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = glyph.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resized = Image.fromarray(glyph.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    box = np.clip(np.asarray(resized, dtype=np.float32), 0, 255)

    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    mass = box.sum()
    ys, xs = np.indices(box.shape)
    cy, cx = (ys * box).sum() / mass, (xs * box).sum() / mass
    centre = FIELD / 2  # MNIST put the centre of mass at (14, 14)
    top, left = round(centre - cy), round(centre - cx)
    # Paste with clipping: a very lopsided glyph may poke out of the field by a pixel or two.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + box.shape[0], FIELD), min(left + box.shape[1], FIELD)
    field[y0:y1, x0:x1] = box[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.rint(field).astype(np.uint8)


def _to_gray(image: object) -> np.ndarray:
    """Any PNG/JPEG mode -> float32 (H, W) in 0..255. Transparent pictures are put on white."""
    from PIL import Image

    assert isinstance(image, Image.Image)
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
