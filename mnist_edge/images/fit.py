"""A picture of a digit -> the 28x28 digit MNIST would have made of it.

MNIST digits are white on black, fitted into a 20x20 box (aspect ratio kept, anti-aliased) and
placed in a 28x28 field so that their centre of mass sits at the centre. :func:`fit_digit` first
finds the ink the way :mod:`~mnist_edge.images.steps` describes (lighting divided out, noise,
ruled lines and specks dropped), brings a fine pen's or a marker's strokes toward MNIST's width
(:func:`normalise_strokes`), then does exactly that.
"""

from __future__ import annotations

import numpy as np

from mnist_edge._mnist import IMAGE_SHAPE, PIXEL_SCALE
from mnist_edge.images import steps
from mnist_edge.images.components import label

__all__ = ["BOX", "WORK_SIDE", "fit_digit", "ink_map", "normalise_strokes"]

#: The digit's box inside the 28x28 field, as in MNIST.
BOX = 20
#: Pictures are worked on at most this many pixels on their longer side: a digit needs no more,
#: and a 12-megapixel photo costs no more than a small picture.
WORK_SIDE = 512
#: Stroke widths (over the digit's larger side) left as they are; MNIST's digits are 0.07-0.14
#: (10th-90th percentile, measured on 3,000 training digits).
STROKE_RANGE = (0.06, 0.14)
#: ... and where the others are brought (chosen on the benchmark's tuning half).
STROKE_TARGET = 0.12
#: What counts as ink when cropping to the digit's box: 8 of 255, ~3 % of full ink.
CROP_LEVEL = 8 / PIXEL_SCALE


def fit_digit(picture: np.ndarray, *, invert: bool | None = None) -> np.ndarray:
    """A picture (H, W) grey or (H, W, 3) RGB, 0..255 (floats in 0..1 also accepted) -> an MNIST
    digit (28, 28) uint8, white on black.

    ``invert``: True for dark ink on a light background (paper), False for light on dark (MNIST's
    own look), None to decide from the picture. Raises :class:`~mnist_edge.errors.InputError`
    ("no digit found") for a blank picture or one with only specks.
    """
    return place(ink_map(picture, invert=invert))


def ink_map(picture: np.ndarray, *, invert: bool | None = None) -> np.ndarray:
    """The digit's ink, 0..1, cropped to its box: everything :func:`fit_digit` does before the
    MNIST box and centring."""
    gray = steps.to_gray(picture)
    if gray.dtype.kind == "f" and gray.max() <= 1.0 and np.asarray(picture).dtype.kind == "f":
        gray = gray * np.float32(PIXEL_SCALE)
    gray = steps.shrink(gray, WORK_SIDE)
    if not (steps.dark_ink(gray) if invert is None else invert):
        gray = np.float32(PIXEL_SCALE) - gray
    sigma = steps.noise_sigma(gray)
    paper = steps.background(gray)
    strength = steps.ink_strength(gray, paper)
    levels = steps.levels(strength, paper, sigma)
    if float(paper.max() - paper.min()) > steps.FLAT_PAPER:
        # Uneven light: once the strokes' width is known, the lighting is estimated again with a
        # window fitted to them, so that a shadow's corner is followed instead of read as ink.
        paper = steps.background(gray, stroke=steps.stroke_width(strength > levels.threshold))
        strength = steps.ink_strength(gray, paper)
        levels = steps.levels(strength, paper, sigma)
    strong = strength > levels.threshold
    faint = strength > levels.line_threshold
    lines = steps.ruled_lines(strength, levels.line_threshold, strong)
    if lines.any():
        strong &= ~lines
        faint &= ~steps.dilate(lines, 1) | strong  # the line and its anti-aliased fringe
    components = label(strong)
    keep = np.zeros(components.count + 1, dtype=bool)
    keep[steps.keep_digit(components)] = True
    digit = keep[components.labels]
    # The digit is its strong strokes plus the fainter ink connected to them (anti-aliased
    # edges, a blurred halo, a light pencil stroke), plus one pixel around that. Its darkest
    # pixel is full ink: a speck elsewhere cannot set the scale, and grey pencil becomes white.
    halo = label(faint | strong)
    touched = np.zeros(halo.count + 1, dtype=bool)
    touched[halo.labels[digit]] = True
    touched[0] = False
    ink = levels.scale(strength, float(strength[digit].max()))
    ink *= steps.dilate(touched[halo.labels], 1)
    shown = ink > CROP_LEVEL
    rows, cols = np.flatnonzero(shown.any(axis=1)), np.flatnonzero(shown.any(axis=0))
    glyph = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return normalise_strokes(glyph, steps.stroke_width(digit))


def normalise_strokes(glyph: np.ndarray, width: float) -> np.ndarray:
    """Strokes much thinner or thicker than MNIST's, relative to the digit's size, brought to
    :data:`STROKE_TARGET` (a fine pen would fade to grey in 20 pixels, a marker would close the
    loops). A glyph smaller than twice the MNIST box is left alone: at that size a stroke is what
    it is, and a pixel more or less would change it more than it helps."""
    size = max(glyph.shape)
    if size < 2 * BOX:
        return glyph
    relative = width / size
    low, high = STROKE_RANGE
    if low <= relative <= high:
        return glyph
    # The farther outside the range, the closer to the target: no jump at the range's edges, so
    # a picture and a slightly different copy of it (a line crossing a stroke) stay alike.
    edge = low if relative < low else high
    wanted = STROKE_TARGET + (edge - STROKE_TARGET) * min(relative / edge, edge / relative) ** 2
    radius = round(abs(wanted - relative) * size / 2)
    if radius == 0:
        return glyph
    if relative > high:  # thinner: a grey erosion
        return steps.erode(glyph, radius)
    return steps.grow(glyph, radius)  # thicker: a grey dilation, the glyph grown by its radius


def place(glyph: np.ndarray) -> np.ndarray:
    """Ink (0..1) cropped to the digit -> (28, 28) uint8: the longer side scaled to 20 px (aspect
    kept, anti-aliased), the centre of mass at the centre of the field."""
    from PIL import Image

    height, width = glyph.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = Image.fromarray((glyph * np.float32(PIXEL_SCALE)).astype(np.float32))
    box = np.clip(np.asarray(scaled.resize(size, Image.Resampling.LANCZOS), dtype=np.float32), 0, PIXEL_SCALE)

    field_h, field_w = IMAGE_SHAPE
    field = np.zeros(IMAGE_SHAPE, dtype=np.float32)
    mass = box.sum()
    if mass <= 0:  # cannot happen for a kept digit, but never divide by zero
        return field.astype(np.uint8)
    ys, xs = np.indices(box.shape)
    cy, cx = (ys * box).sum() / mass, (xs * box).sum() / mass
    top, left = round(field_h / 2 - cy), round(field_w / 2 - cx)  # MNIST: centre of mass at (14, 14)
    # Paste with clipping: a very lopsided glyph may poke out of the field by a pixel or two.
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + box.shape[0], field_h), min(left + box.shape[1], field_w)
    field[y0:y1, x0:x1] = box[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.rint(field).astype(np.uint8)
