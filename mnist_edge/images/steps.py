"""The steps that turn a picture into an ink map: each a small function on numpy arrays.

A photo or scan is paper (lit unevenly, noisy, maybe ruled) with ink on it, and maybe dust.
The steps, in the order :func:`~mnist_edge.images.fit.fit_digit` runs them:

1. :func:`to_gray` and :func:`shrink` to a working resolution (a digit needs no more);
2. :func:`dark_ink` decides the polarity: the border is paper, the ink lies beyond its range;
3. :func:`background` estimates the paper's brightness everywhere (a grey closing at a coarse
   scale: it removes strokes and keeps gradients and shadows), and :func:`ink_strength` divides
   it out, so that lighting cancels; with :func:`stroke_width` known, a second, closer look;
4. :func:`noise_sigma` measures the sensor noise, from which the ink levels follow (:func:`levels`);
5. :func:`ruled_lines` finds lines that run across the picture (notebook paper) so they can be
   dropped, keeping the pixels where a stroke crosses them;
6. :func:`keep_digit` keeps the biggest connected component and the parts near it, dropping
   specks and far marks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_edge.errors import InputError
from mnist_edge.images.components import Components, label

__all__ = [
    "InkLevels",
    "background",
    "box_mean",
    "dark_ink",
    "dilate",
    "erode",
    "grow",
    "ink_strength",
    "keep_digit",
    "levels",
    "noise_sigma",
    "ruled_lines",
    "shrink",
    "stroke_width",
    "to_gray",
]

#: One side's ink must outweigh the other's this many times to decide the polarity.
POLARITY_MARGIN = 2.0
#: The background is estimated on a copy this many pixels on its longer side.
COARSE_SIDE = 64
#: The closing's window, as a fraction of the coarse copy's shorter side: wider than any stroke
#: (a marker digit filling the frame has strokes about a quarter of its height), narrower than
#: the lighting's changes.
CLOSING_FRACTION = 0.5
#: Paper whose first estimate varies less than this (grey levels) is evenly lit: no second look.
FLAT_PAPER = 8.0
#: Once the stroke width is known, the closing's window is this many stroke widths.
STROKE_WINDOW = 4.0
#: Ink threshold between the noise floor (0) and the ink level (1).
THRESHOLD = 0.4
#: Ruled lines are looked for among fainter pixels than the ink: printed lines are lighter than a pen.
LINE_THRESHOLD = 0.12
#: A line runs across at least this fraction of the picture ...
LINE_SPAN = 0.85
#: ... at an angle of at most this many degrees ...
LINE_MAX_ANGLE = 3.0
#: ... and is at most this thick (fraction of the picture's height, at least 2 pixels).
LINE_MAX_THICKNESS = 0.04
#: Rows a line's band may have beyond its thickness (a slant over two rows, anti-aliased edges).
LINE_FRINGE = 4
#: Stroke pixels on a line this many times its strength (the upper quartile over the line: its core,
#: not its anti-aliased edges) are ink on top of it.
LINE_INK_RATIO = 1.6
#: Components of at least this fraction of the digit's area and of its extent (larger side), near
#: it, are parts of the digit (a broken stroke, a separately drawn bar); smaller ones are specks.
PART_AREA = 0.01
PART_EXTENT = 0.1
#: "Near": at most this fraction of the digit's larger side away from its box (the box grows as
#: parts join, so a digit broken into several pieces is gathered piece by piece).
PART_DISTANCE = 0.3
#: The smallest digit: fewer ink pixels, or a smaller extent, is a speck.
MIN_DIGIT_PIXELS = 8
MIN_DIGIT_EXTENT = 4
#: Below this contrast (grey levels) there is nothing drawn.
MIN_CONTRAST = 16.0
#: ... or below this many noise standard deviations.
MIN_SIGNAL_TO_NOISE = 5.0

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"


def to_gray(picture: np.ndarray) -> np.ndarray:
    """(H, W) grey or (H, W, 3|4) RGB(A) pixels in 0..255 -> float32 (H, W) grey (alpha ignored)."""
    pixels = np.asarray(picture)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        pixels = pixels[..., :3].astype(np.float32) @ _LUMA
    elif pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim != 2 or not pixels.size:
        raise InputError(f"expected a 2-D grey or (H, W, 3) colour picture, got shape {pixels.shape}")
    if pixels.dtype.kind not in "uif":
        raise InputError(f"expected numeric pixels, got dtype {pixels.dtype}")
    gray = pixels.astype(np.float32, copy=False)
    if not np.isfinite(gray).all():
        raise InputError("the picture has NaN or infinite pixels")
    return gray


def shrink(gray: np.ndarray, max_side: int) -> np.ndarray:
    """Average whole blocks of pixels until the longer side is at most ``max_side``."""
    factor = -(-max(gray.shape) // max_side)
    if factor <= 1:
        return gray
    from PIL import Image

    return np.asarray(Image.fromarray(gray).reduce(factor), dtype=np.float32)


def box_mean(image: np.ndarray) -> np.ndarray:
    """3x3 mean over the windows that fit inside the picture (two pixels smaller each way);
    pictures under 3 pixels are returned as they are."""
    if min(image.shape) < 3:
        return image
    rows = image[:-2] + image[1:-1] + image[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / np.float32(9)


def dark_ink(gray: np.ndarray) -> bool:
    """True if the ink is darker than the paper. The border is paper (lit or in shadow); ink is
    what lies beyond the border's range: the side with more of it (pixels times grey levels)
    wins. If neither clearly does (a digit cropped so tight that it touches the border), the ink
    is the extreme farther from the border's median."""
    border = np.sort(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    last = len(border) - 1
    low, median, high = (float(border[round(q * last)]) for q in (0.02, 0.5, 0.98))
    smooth = box_mean(gray)
    darker = float(np.clip(low - smooth, 0, None).sum())
    lighter = float(np.clip(smooth - high, 0, None).sum())
    if max(darker, lighter) > POLARITY_MARGIN * min(darker, lighter):
        return darker > lighter
    return median - float(smooth.min()) >= float(smooth.max()) - median


def _window(image: np.ndarray, size: int, reduce: np.ufunc) -> np.ndarray:
    """A separable square max/min (or logical-or) filter over the part of each ``size``-wide window
    that lies inside the picture (the same as repeating the edge). Per axis, windows of 1, 2, 4, ...
    pixels are built by doubling and the answer is two overlapping ones: a handful of whole-array
    steps instead of one per pixel of the window."""
    identity = {np.maximum: -np.inf, np.minimum: np.inf, np.logical_or: False}[reduce]
    half = size // 2
    for axis in (0, 1):
        n = image.shape[axis]
        shape = list(image.shape)
        shape[axis] += 2 * half
        span = np.full(shape, identity, dtype=image.dtype)  # outside the picture: never the answer
        if axis == 0:
            span[half : half + n] = image
        else:
            span[:, half : half + n] = image
        reach = 1
        while 2 * reach <= size:
            step = span.shape[axis] - reach
            head = span[:step] if axis == 0 else span[:, :step]
            tail = span[reach:] if axis == 0 else span[:, reach:]
            span = reduce(head, tail)  # span[i] covers i .. i + 2 * reach - 1
            reach *= 2
        first = span[:n] if axis == 0 else span[:, :n]
        rest = (
            span[size - reach : size - reach + n] if axis == 0 else span[:, size - reach : size - reach + n]
        )
        image = reduce(first, rest)
    return image


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by ``radius`` pixels (square)."""
    if radius <= 0:
        return mask
    return _window(mask, 2 * radius + 1, np.logical_or)


def erode(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey erosion (square min filter): strokes ``radius`` pixels thinner on each side."""
    return _window(image, 2 * radius + 1, np.minimum)


def grow(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation (square max filter) on a canvas ``radius`` pixels larger on each side, so that
    strokes at the edge grow outward too."""
    return _window(np.pad(image, radius), 2 * radius + 1, np.maximum)


def background(gray: np.ndarray, stroke: float | None = None) -> np.ndarray:
    """The paper's brightness under dark ink, everywhere: a grey closing (max, then min filter)
    of a coarse copy, with a window wider than any stroke, brought back to full size. A closing
    keeps any monotone lighting (a gradient, a shadow's edge) exactly, and removes what is darker
    and thinner than the window: the ink.

    Near the edges a window would be cut off and the lighting flattened, so the copy is extended
    past its edges by odd reflection, which continues a gradient; the extension is capped by the
    brightest paper within a window of the edge, so that ink near an edge cannot reflect into a
    bright spot (it can still brighten the estimate there by what the light changes over one
    window: another reason for the narrower window once the strokes are known).

    Without ``stroke`` (the strokes' width in pixels, when known) the window is half the
    picture's shorter side, which removes even the strokes of a marker digit that fills it."""
    from PIL import Image

    coarse = shrink(gray, COARSE_SIDE)
    size = int(CLOSING_FRACTION * min(coarse.shape))
    if stroke is not None:
        # Strokes this wide: a window a few times wider removes them and follows the light closer.
        size = min(size, int(np.ceil(STROKE_WINDOW * stroke * coarse.shape[0] / gray.shape[0])))
    size = max(3, size | 1)
    closed = _closing(coarse, size)
    if closed.shape == gray.shape:
        return closed
    height, width = gray.shape
    return np.asarray(Image.fromarray(closed).resize((width, height), Image.Resampling.BILINEAR))


def _closing(image: np.ndarray, size: int) -> np.ndarray:
    """Grey closing over an odd-reflected extension, capped by the nearby maximum."""
    half = size // 2
    padded = _extend(image, half, odd=True)
    np.minimum(padded, _extend(_window(image, size, np.maximum), half, odd=False), out=padded)
    return _window(_window(padded, size, np.maximum), size, np.minimum)[half:-half, half:-half]


def _extend(image: np.ndarray, half: int, *, odd: bool) -> np.ndarray:
    """``image`` extended by ``half`` pixels on every side: odd reflection (``2 f(edge) - f(edge
    - k)``) or the edge repeated. Sliced by hand: ``np.pad`` costs more than the closing on a
    28x28 picture."""
    if half >= min(image.shape):  # wider than the picture: np.pad reflects repeatedly
        return (
            np.pad(image, half, mode="reflect", reflect_type="odd")
            if odd
            else np.pad(image, half, mode="edge")
        )
    for axis in (0, 1):
        first = image[:1] if axis == 0 else image[:, :1]
        last = image[-1:] if axis == 0 else image[:, -1:]
        if odd:
            inner_first = image[half:0:-1] if axis == 0 else image[:, half:0:-1]
            inner_last = image[-2 : -half - 2 : -1] if axis == 0 else image[:, -2 : -half - 2 : -1]
            before, after = 2 * first - inner_first, 2 * last - inner_last
        else:
            before, after = np.repeat(first, half, axis=axis), np.repeat(last, half, axis=axis)
        image = np.concatenate([before, image, after], axis=axis)
    return image


def stroke_width(mask: np.ndarray) -> float:
    """The typical width in pixels of the strokes of the biggest component of ``mask``: twice its
    area over its perimeter (a stroke of length L and width w has area wL and perimeter ~2L)."""
    components = label(mask)
    if components.count == 0:
        return 0.0
    biggest = components.labels == int(np.argmax(components.area)) + 1
    edges = np.count_nonzero(np.diff(biggest, axis=0, prepend=False, append=False))
    edges += np.count_nonzero(np.diff(biggest, axis=1, prepend=False, append=False))
    return 2.0 * float(components.area.max()) / max(edges, 1)


def ink_strength(gray: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """How much darker than the paper each pixel is, as a fraction of the paper's brightness
    (0 = paper, 1 = black): lighting multiplies paper and ink alike, so it cancels."""
    return np.clip((paper - gray) / np.maximum(paper, np.float32(MIN_CONTRAST)), 0, 1)


def noise_sigma(gray: np.ndarray) -> float:
    """The noise's standard deviation in grey levels, from the median absolute difference of
    horizontal neighbours (strokes are a minority of those differences, so they do not count)."""
    if gray.shape[1] < 2:
        return 0.0
    diff = np.abs(np.diff(gray, axis=1))
    return float(1.4826 * np.median(diff) / np.sqrt(2))


@dataclass(frozen=True)
class InkLevels:
    """Ink strengths (0..1) that matter: ``floor`` is paper plus noise, ``peak`` the strongest ink
    (3x3 mean, so that single noisy pixels do not count), ``threshold`` what counts as ink."""

    floor: float
    peak: float

    @property
    def threshold(self) -> float:
        return self.floor + THRESHOLD * (self.peak - self.floor)

    @property
    def line_threshold(self) -> float:
        return self.floor + LINE_THRESHOLD * (self.peak - self.floor)

    def scale(self, strength: np.ndarray, ink: float) -> np.ndarray:
        """Strength -> 0..1: paper and noise at 0, ``ink`` (the digit's own strength) at 1."""
        return np.clip((strength - self.floor) / max(ink - self.floor, 1e-3), 0, 1)


def levels(strength: np.ndarray, paper: np.ndarray, sigma: float) -> InkLevels:
    """The floor and the peak; :class:`InputError` if nothing stands out of the paper and noise."""
    brightness = float(np.median(paper))
    noise = sigma / max(brightness, MIN_CONTRAST)
    floor = float(np.median(strength)) + 3 * noise
    peak = float(box_mean(strength).max())
    contrast = (peak - floor) * max(brightness, MIN_CONTRAST)
    if contrast < MIN_CONTRAST or peak - floor < MIN_SIGNAL_TO_NOISE * noise:
        raise InputError("no digit found: the picture is blank (or try --invert / --no-invert)")
    return InkLevels(floor=floor, peak=peak)


def ruled_lines(strength: np.ndarray, level: float, strong: np.ndarray) -> np.ndarray:
    """Pixels of straight lines running across the picture (ruled or squared paper), horizontal
    or vertical within :data:`LINE_MAX_ANGLE` degrees, where ``strength`` is over ``level`` (a
    thin line split over two rows or columns by anti-aliasing counts by the pair's sum). A pixel
    of a ``strong`` stroke that lies on a line and touches the rest of that stroke across the
    line (where a stroke crosses or runs along it) stays with the stroke."""
    thickness = max(2, int(LINE_MAX_THICKNESS * min(strength.shape)))
    across = _horizontal_lines(_over(strength, level))
    down = _horizontal_lines(_over(strength.T, level)).T
    lines = across | down
    if not lines.any():
        return lines
    stroke = strong & ~lines
    band = thickness + LINE_FRINGE  # the widest band of rows _horizontal_lines returns
    # A slanted stroke continues one pixel aside across the line: widen it by that first.
    wide = _near(stroke, 1, 1) | stroke
    keep = across & (_near(wide, band, 0, both=True) | _near(stroke, 1, 0))
    wide = _near(stroke, 1, 0) | stroke
    keep |= down & (_near(wide, band, 1, both=True) | _near(stroke, 1, 1))
    # Printed lines are mostly fainter than a pen: ink clearly darker than the line is on top of it.
    keep |= strength > LINE_INK_RATIO * float(np.quantile(strength[lines], 0.75))
    return lines & ~(keep & strong)


def _over(strength: np.ndarray, level: float) -> np.ndarray:
    """Pixels over ``level``, or whose sum with the next row's is (for lines along the rows)."""
    mask = strength > level
    mask[:-1] |= strength[:-1] + strength[1:] > level
    return mask


def _near(stroke: np.ndarray, distance: int, axis: int, *, both: bool = False) -> np.ndarray:
    """Pixels with a stroke pixel within ``distance`` along ``axis``: on either side, or (``both``)
    on each side."""
    before = np.zeros_like(stroke)
    after = np.zeros_like(stroke)
    for step in range(1, min(distance, stroke.shape[axis] - 1) + 1):
        if axis == 0:
            before[step:] |= stroke[:-step]
            after[:-step] |= stroke[step:]
        else:
            before[:, step:] |= stroke[:, :-step]
            after[:, :-step] |= stroke[:, step:]
    return before & after if both else before | after


def _horizontal_lines(mask: np.ndarray) -> np.ndarray:
    """Pixels of near-horizontal lines at least :data:`LINE_SPAN` of the width long and at most
    :data:`LINE_MAX_THICKNESS` thick: the mask's pixels counted along each slope in turn."""
    height, width = mask.shape
    out = np.zeros_like(mask)
    need = LINE_SPAN * width
    if width < 16 or mask.any(axis=0).mean() < LINE_SPAN:  # nothing runs across: the usual case
        return out
    ys, xs = np.nonzero(mask)
    # The slope: the one along which the pixels pile up most sharply into few rows (parallel
    # lines all at once; a digit's pixels spread the same at every slope).
    best_score, best_rows = -1.0, None
    step = 0.5
    for angle in np.arange(-LINE_MAX_ANGLE, LINE_MAX_ANGLE + step / 2, step):
        rows = np.rint(ys - xs * np.tan(np.radians(angle))).astype(np.int64)
        rows -= rows.min()
        counts = np.bincount(rows).astype(np.float64)
        score = float(counts @ counts)
        if score > best_score:
            best_score, best_rows = score, rows
    assert best_rows is not None
    rows = best_rows
    # A thin line drawn at a slant falls on two neighbouring rows: count, for each pair of rows,
    # the columns that have a pixel in either (a thick stroke must not count twice).
    present = np.zeros((int(rows.max()) + 2, width), dtype=bool)
    present[rows, xs] = True
    cover = (present[:-1] | present[1:]).sum(axis=1)
    if cover.max() < need:
        return out
    core = np.zeros(len(cover) + 1, dtype=bool)  # both bins of each pair that spans the picture
    core[:-1] |= cover >= need
    core[1:] |= cover >= need
    line_bins = core.copy()  # and one bin either side: the anti-aliased fringe
    line_bins[1:] |= core[:-1]
    line_bins[:-1] |= core[1:]
    thickness = max(2, int(LINE_MAX_THICKNESS * min(height, width)))
    edges = np.diff(np.concatenate([[0], line_bins.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start, stop in zip(starts, stops, strict=True):
        if stop - start > thickness + LINE_FRINGE:  # thick: a stroke or a shape, not a printed line
            line_bins[start:stop] = False
    out[ys, xs] = line_bins[rows]
    return out


def keep_digit(components: Components) -> np.ndarray:
    """Labels (1-based) of the digit: the biggest component, and every component of at least
    :data:`PART_AREA` of its area and :data:`PART_EXTENT` of its size within :data:`PART_DISTANCE`
    of its box (a broken stroke, a separately drawn bar), growing the box as parts join.
    Raises :class:`InputError` when even the biggest is a speck."""
    if components.count == 0:
        raise InputError("no digit found: the picture is blank (or try --invert / --no-invert)")
    area = components.area
    main = int(np.argmax(area))
    heights, widths = components.height(), components.width()
    if area[main] < MIN_DIGIT_PIXELS or max(heights[main], widths[main]) < MIN_DIGIT_EXTENT:
        raise InputError("no digit found: only specks (or try --invert / --no-invert)")
    top, bottom = components.top[main], components.bottom[main]
    left, right = components.left[main], components.right[main]
    kept = [main]
    extent = np.maximum(heights, widths)
    candidates = [
        int(i)
        for i in np.argsort(-area, kind="stable")
        if i != main and area[i] >= PART_AREA * area[main] and extent[i] >= PART_EXTENT * extent[main]
    ]
    grew = True
    while grew:
        grew = False
        reach = PART_DISTANCE * max(bottom - top + 1, right - left + 1)
        for i in list(candidates):
            gap_y = max(top - components.bottom[i], components.top[i] - bottom, 1) - 1
            gap_x = max(left - components.right[i], components.left[i] - right, 1) - 1
            if max(gap_y, gap_x) <= reach:
                kept.append(i)
                candidates.remove(i)
                top, bottom = min(top, components.top[i]), max(bottom, components.bottom[i])
                left, right = min(left, components.left[i]), max(right, components.right[i])
                grew = True
    return np.array(kept, dtype=np.int64) + 1
