"""Non-MNIST digit pictures, made on the spot: printed with the machine's fonts, drawn as a finger draws.

A deterministic generator (everything comes from seeded ``numpy`` generators) for the picture
benchmark (``real_digits.py``) and, in a tiny slice, for the tests. A picture is built in two
layers, so that every perturbation can be applied on its own:

1. an *ink coverage* map in 0..1 (the digit: a font glyph, or polyline strokes with a pen width and
   the wobble of a hand), rendered at 4x and reduced, so that edges are anti-aliased as a camera or
   a canvas would make them;
2. a *picture*: paper and ink colours, lighting, ruled lines, specks, then blur, sensor noise and
   JPEG compression, each one an axis with levels (:data:`AXES`).

Every sample belongs to one of two halves, ``tune`` and ``heldout``: printed digits by font file
(alternating in sorted order, so both halves hold both families), drawn digits by writer. The
picture pipeline is tuned on one half and reported on the other.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "AXES",
    "SPLITS",
    "Sample",
    "apply",
    "clean_samples",
    "font_files",
    "photo",
]

SPLITS = ("tune", "heldout")
#: Render at this multiple of the final size, then reduce: anti-aliased edges.
SUPERSAMPLE = 4
#: Side of a clean picture (pixels); the digit takes 55-80 % of its height.
CANVAS = 112
#: Printed variants (size, place, aspect) per font and digit.
PRINTED_VARIANTS = 3
#: Writers per half; each writes every digit once.
WRITERS_PER_SPLIT = 50


@dataclass(frozen=True)
class Sample:
    """One clean digit: its ink coverage map and where it came from."""

    ink: np.ndarray  # (H, W) float32 in 0..1
    label: int
    kind: str  # "printed" or "drawn"
    source: str  # font file name, or writer id
    split: str  # "tune" or "heldout"
    seed: int  # for the perturbations applied to this sample


# --------------------------------------------------------------------------- printed


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """Every scalable font on the machine that draws all ten digits (from ``fc-list``, else a
    walk of the usual folders), sorted by file name."""
    files: set[Path] = set()
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, check=False).stdout
        files = {Path(line.split(":")[0].strip()) for line in out.splitlines() if line.strip()}
    if not files:
        for folder in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"):
            if folder.is_dir():
                files.update(folder.rglob("*.[ot]tf"))
    usable = [f for f in files if f.suffix.lower() in (".ttf", ".otf") and _draws_digits(f)]
    return tuple(sorted(usable, key=lambda f: f.name))


def _draws_digits(font_file: Path) -> bool:
    """True if the font has ten distinct, non-empty digit glyphs (not ten copies of a missing-glyph box)."""
    try:
        font = ImageFont.truetype(str(font_file), 40)
    except OSError:
        return False
    glyphs = set()
    for digit in "0123456789":
        mask = font.getmask(digit)
        if mask.size[0] == 0 or mask.size[1] == 0:
            return False
        glyphs.add(bytes(mask))
    return len(glyphs) == 10


def printed(label: int, font_file: Path, rng: np.random.Generator) -> np.ndarray:
    """A digit in ``font_file``: height 55-80 % of the canvas, somewhat off-centre, aspect varied a little."""
    big = CANVAS * SUPERSAMPLE
    height = rng.uniform(0.55, 0.8) * big
    font = ImageFont.truetype(str(font_file), 200)
    left, top, right, bottom = font.getbbox(str(label))
    glyph = Image.new("L", (right - left + 8, bottom - top + 8))
    ImageDraw.Draw(glyph).text((4 - left, 4 - top), str(label), fill=255, font=font)
    scale = height / glyph.height
    width = max(1, round(glyph.width * scale * rng.uniform(0.85, 1.15)))
    glyph = glyph.resize((width, max(1, round(height))), Image.Resampling.BICUBIC)
    return _place(glyph, rng)


def _place(glyph: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Paste a supersampled glyph at a random place of the canvas (kept inside) and reduce."""
    big = CANVAS * SUPERSAMPLE
    canvas = Image.new("L", (big, big))
    room_x, room_y = max(0, big - glyph.width), max(0, big - glyph.height)
    x = int(room_x * rng.uniform(0.25, 0.75))
    y = int(room_y * rng.uniform(0.25, 0.75))
    canvas.paste(glyph, (x, y))
    return _reduce(canvas)


def _reduce(canvas: Image.Image) -> np.ndarray:
    small = canvas.reduce(SUPERSAMPLE) if SUPERSAMPLE > 1 else canvas
    return np.asarray(small, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- drawn


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, n: int = 24) -> list:
    """Points on an ellipse arc; angles in degrees, 0 = right, 90 = down (picture coordinates)."""
    t = np.radians(np.linspace(start, stop, n))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


#: Digit skeletons as someone writes them: strokes of (x, y) points in a box 0.6 wide, 1 high.
#: Several common ways of writing a digit (a 1 with or without a flag, an open or closed 4, ...).
TEMPLATES: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [[_arc(0.3, 0.5, 0.28, 0.48, -100, 265, 40)], [_arc(0.3, 0.5, 0.24, 0.48, -80, 290, 40)]],
    1: [
        [[(0.33, 0.02), (0.3, 0.98)]],
        [[(0.14, 0.22), (0.34, 0.02), (0.31, 0.98)]],
    ],
    2: [
        [[*_arc(0.3, 0.3, 0.27, 0.27, 200, 380, 20), (0.02, 0.97), (0.6, 0.95)]],
        [[*_arc(0.3, 0.28, 0.26, 0.26, 190, 360, 20), (0.08, 0.9), (0.0, 0.97), (0.58, 0.97)]],
    ],
    3: [
        [_arc(0.3, 0.26, 0.25, 0.24, -160, 95, 22) + _arc(0.3, 0.74, 0.29, 0.26, -95, 160, 22)[1:]],
        [[(0.05, 0.03), (0.55, 0.03), (0.25, 0.42), *_arc(0.3, 0.7, 0.29, 0.28, -80, 160, 22)]],
    ],
    4: [
        [[(0.42, 0.0), (0.02, 0.66), (0.6, 0.66)], [(0.45, 0.3), (0.45, 1.0)]],
        [[(0.08, 0.0), (0.04, 0.58), (0.6, 0.58)], [(0.46, 0.12), (0.46, 1.0)]],
    ],
    5: [
        [[(0.56, 0.02), (0.1, 0.02), (0.06, 0.45), *_arc(0.3, 0.69, 0.29, 0.29, -125, 150, 24)]],
        [
            [(0.08, 0.03), (0.06, 0.44), *_arc(0.3, 0.69, 0.28, 0.28, -125, 150, 24)],
            [(0.08, 0.03), (0.58, 0.03)],
        ],
    ],
    6: [
        [[(0.5, 0.0), (0.28, 0.22), (0.08, 0.52), *_arc(0.3, 0.73, 0.25, 0.25, 180, 530, 30)]],
        [[(0.45, 0.0), (0.15, 0.35), *_arc(0.3, 0.7, 0.27, 0.28, 200, 560, 30)]],
    ],
    7: [
        [[(0.02, 0.03), (0.6, 0.03), (0.22, 1.0)]],
        [[(0.02, 0.06), (0.58, 0.03), (0.25, 1.0)], [(0.15, 0.5), (0.52, 0.5)]],
    ],
    8: [
        [_arc(0.3, 0.25, 0.22, 0.23, 90, 450, 30), _arc(0.3, 0.72, 0.28, 0.26, -90, 270, 30)],
        [
            [
                *_arc(0.3, 0.25, 0.23, 0.23, 60, 300, 22),
                *_arc(0.3, 0.72, 0.27, 0.26, -90, 270, 30),
                *_arc(0.3, 0.25, 0.23, 0.23, -60, 60, 10),
            ]
        ],
    ],
    9: [
        [[*_arc(0.3, 0.28, 0.27, 0.26, -10, 350, 30), (0.57, 0.3), (0.5, 1.0)]],
        [[*_arc(0.3, 0.27, 0.26, 0.25, 0, 360, 30), (0.56, 0.6), (0.4, 1.0)]],
    ],
}


def _smooth(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting: a polyline becomes a curve, as a moving hand rounds corners."""
    for _ in range(rounds):
        if len(points) < 3:
            return points
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        points = np.concatenate([points[:1], np.stack([q, r], axis=1).reshape(-1, 2), points[-1:]])
    return points


@dataclass(frozen=True)
class Writer:
    """How one person writes: slant, width, size, pen, tremor. Drawn from its own seed."""

    slant: float
    aspect: float
    rotation: float
    pen: float  # pen width as a fraction of the digit's height
    tremor: float
    style_seed: int

    @classmethod
    def from_seed(cls, seed: int) -> Writer:
        rng = np.random.default_rng([seed, 17])
        return cls(
            slant=float(rng.uniform(-0.15, 0.35)),
            aspect=float(rng.uniform(0.75, 1.3)),
            rotation=float(rng.uniform(-6, 6)),
            pen=float(rng.uniform(0.07, 0.15)),
            tremor=float(rng.uniform(0.004, 0.018)),
            style_seed=seed,
        )


def drawn(label: int, writer: Writer, rng: np.random.Generator, pen: float | None = None) -> np.ndarray:
    """``label`` written by ``writer``: a template in the writer's style, each point jittered, smoothed,
    drawn with a round pen of ``pen`` (default the writer's) times the digit's height."""
    styles = TEMPLATES[label]
    strokes = styles[np.random.default_rng([writer.style_seed, label]).integers(len(styles))]
    big = CANVAS * SUPERSAMPLE
    height = rng.uniform(0.55, 0.78) * big
    angle = math.radians(writer.rotation + rng.normal(0, 2))
    cos, sin = math.cos(angle), math.sin(angle)
    # A wobble of low frequency shared by the whole digit, plus per-point tremor.
    wobble = rng.normal(0, 0.03, size=(2, 2))
    drawn_strokes = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64)
        pts = pts + rng.normal(0, writer.tremor, size=pts.shape)
        pts[:, 0] += wobble[0, 0] * np.sin(pts[:, 1] * 3 + wobble[0, 1] * 10)
        pts[:, 1] += wobble[1, 0] * np.sin(pts[:, 0] * 4 + wobble[1, 1] * 10)
        x = (pts[:, 0] - 0.3) * writer.aspect - writer.slant * (pts[:, 1] - 0.5)
        y = pts[:, 1] - 0.5
        pts = np.stack([x * cos - y * sin, x * sin + y * cos], axis=1) * height
        drawn_strokes.append(_smooth(pts))
    all_pts = np.concatenate(drawn_strokes)
    width_px = max(1.0, (writer.pen if pen is None else pen) * height)
    margin = width_px + 4
    lo = all_pts.min(axis=0) - margin
    size = np.ceil(all_pts.max(axis=0) + margin - lo).astype(int)
    glyph = Image.new("L", (int(size[0]), int(size[1])))
    draw = ImageDraw.Draw(glyph)
    radius = width_px / 2
    for pts in drawn_strokes:
        pts = pts - lo
        flat = [tuple(p) for p in pts.tolist()]
        draw.line(flat, fill=255, width=max(1, round(width_px)), joint="curve")
        for px, py in (flat[0], flat[-1]):  # round pen tips
            draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=255)
    return _place(glyph, rng)


# --------------------------------------------------------------------------- clean set


def clean_samples(split: str | None = None, *, limit_per_kind: int | None = None) -> Iterator[Sample]:
    """The clean set: every font x digit x :data:`PRINTED_VARIANTS`, and :data:`WRITERS_PER_SPLIT`
    writers per half writing each digit. ``split`` picks one half; ``limit_per_kind`` keeps the first
    N of each kind (for fast tests)."""
    splits = SPLITS if split is None else (split,)
    for which in splits:
        if which not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {which!r}")
    for which in splits:
        count = 0
        for index, font in enumerate(font_files()):
            if SPLITS[index % 2] != which:
                continue
            for variant in range(PRINTED_VARIANTS):
                for label in range(10):
                    if limit_per_kind is not None and count >= limit_per_kind:
                        break
                    seed = _seed("printed", font.name, variant, label)
                    ink = printed(label, font, np.random.default_rng(seed))
                    yield Sample(ink, label, "printed", font.name, which, seed)
                    count += 1
        count = 0
        offset = 0 if which == "tune" else 1000
        for writer_id in range(offset, offset + WRITERS_PER_SPLIT):
            writer = Writer.from_seed(writer_id)
            for label in range(10):
                if limit_per_kind is not None and count >= limit_per_kind:
                    break
                seed = _seed("drawn", str(writer_id), 0, label)
                ink = drawn(label, writer, np.random.default_rng(seed))
                yield Sample(ink, label, "drawn", f"writer{writer_id}", which, seed)
                count += 1


def _seed(*parts: object) -> int:
    """A stable seed from the parts (Python's own hash() is salted per process)."""
    import zlib

    return zlib.crc32("/".join(map(str, parts)).encode())


# --------------------------------------------------------------------------- perturbations

#: Each axis varies one thing from the clean picture (dark ink on light paper, nothing else).
#: Levels are in the axis's own unit: grey levels, pixels, degrees, JPEG quality, ...
AXES: dict[str, tuple[object, ...]] = {
    "clean": ("-",),
    "noise": (2, 4, 8, 16),  # Gaussian sensor noise, standard deviation in grey levels
    "blur": (1.0, 2.0, 3.0),  # Gaussian blur radius in pixels (the digit is 60-90 px tall)
    "gradient": (0.3, 0.6, "shadow"),  # lighting falls by that fraction across the page; a cast shadow
    "rotation": (-20, -10, 10, 20),  # degrees
    "jpeg": (75, 50, 30, 15),  # quality
    "stroke": ("thin", "thick", "marker"),  # a thinner or thicker pen than the clean set's
    "place": ("small", "corner", "large", "wide"),  # digit size and position in the frame
    "colour": ("blue-pen", "red-pen", "yellow-paper", "chalkboard", "pencil"),
    "lines": ("ruled", "squared", "ruled-dark"),  # notebook paper
    "specks": (10, 40),  # dust and dots in the margin
}

_COLOURS = {  # (paper RGB, ink RGB)
    "clean": ((245, 245, 242), (25, 25, 30)),
    "blue-pen": ((248, 248, 250), (25, 50, 160)),
    "red-pen": ((250, 250, 248), (200, 30, 30)),
    "yellow-paper": ((250, 235, 140), (30, 30, 40)),
    "chalkboard": ((40, 70, 50), (235, 235, 225)),
    "pencil": ((240, 240, 236), (120, 120, 125)),
}


def apply(sample: Sample, axis: str, level: object) -> np.ndarray:
    """The picture of ``sample`` with one perturbation: (H, W, 3) uint8 RGB."""
    if axis not in AXES or level not in AXES[axis]:
        raise ValueError(f"unknown axis/level {axis}={level!r}")
    rng = np.random.default_rng([sample.seed, _seed(axis, level)])
    ink = sample.ink
    paper, ink_rgb = _COLOURS[level if axis == "colour" else "clean"]
    if axis == "stroke":
        ink = _restroke(sample, str(level), rng)
    elif axis == "rotation":
        ink = np.asarray(Image.fromarray(ink).rotate(float(level), Image.Resampling.BILINEAR), np.float32)
    elif axis == "place":
        ink = _replace(ink, str(level), rng)
    picture = _compose(ink, paper, ink_rgb)
    if axis == "gradient":
        picture = picture * _lighting(picture.shape[:2], level, rng)[..., None]
    elif axis == "lines":
        picture = _lines(picture, ink, str(level), rng)
    elif axis == "specks":
        picture = _specks(picture, ink, int(level), ink_rgb, rng)
    if axis == "blur":
        picture = _blur(picture, float(level))
    if axis == "noise":
        picture = picture + rng.normal(0, float(level), size=picture.shape[:2])[..., None]
    picture = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
    if axis == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="JPEG", quality=int(level))
        picture = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return picture


def _compose(ink: np.ndarray, paper: tuple[int, int, int], ink_rgb: tuple[int, int, int]) -> np.ndarray:
    paper_a, ink_a = np.asarray(paper, np.float32), np.asarray(ink_rgb, np.float32)
    return paper_a * (1 - ink[..., None]) + ink_a * ink[..., None]


def _restroke(sample: Sample, level: str, rng: np.random.Generator) -> np.ndarray:
    """Drawn digits are redrawn with another pen; printed ones are eroded or dilated."""
    if sample.kind == "drawn":
        pen = {"thin": 0.025, "thick": 0.2, "marker": 0.28}[level]
        writer = Writer.from_seed(int(sample.source.removeprefix("writer")))
        return drawn(sample.label, writer, np.random.default_rng(sample.seed), pen=pen)
    image = Image.fromarray(np.rint(sample.ink * 255).astype(np.uint8))
    big = image.resize((image.width * SUPERSAMPLE, image.height * SUPERSAMPLE), Image.Resampling.BICUBIC)
    big = big.point(lambda v: 255 if v >= 128 else 0)
    size = {"thin": 9, "thick": 13, "marker": 21}[level]
    big = big.filter(ImageFilter.MinFilter(size) if level == "thin" else ImageFilter.MaxFilter(size))
    return _reduce(big)


def _replace(ink: np.ndarray, level: str, rng: np.random.Generator) -> np.ndarray:
    """The digit moved: small anywhere in a big frame, in its corner, filling the frame, in a wide strip."""
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.02), np.flatnonzero(ink.max(axis=0) > 0.02)
    glyph = Image.fromarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    frame = {"small": (320, 240), "corner": (320, 240), "large": (96, 96), "wide": (400, 120)}[level]
    height = {"small": 0.15, "corner": 0.2, "large": 0.97, "wide": 0.7}[level] * frame[1]
    scale = height / glyph.height
    glyph = glyph.resize(
        (max(1, round(glyph.width * scale)), max(1, round(height))), Image.Resampling.BILINEAR
    )
    out = np.zeros((frame[1], frame[0]), np.float32)
    room_x, room_y = max(0, frame[0] - glyph.width), max(0, frame[1] - glyph.height)
    if level == "corner":
        x, y = int(room_x * rng.choice([0.03, 0.97])), int(room_y * rng.choice([0.03, 0.97]))
    else:
        x, y = int(room_x * rng.uniform()), int(room_y * rng.uniform())
    g = np.asarray(glyph, np.float32)[: frame[1], : frame[0]]
    out[y : y + g.shape[0], x : x + g.shape[1]] = g
    return np.clip(out, 0, 1)


def _lighting(shape: tuple[int, ...], level: object, rng: np.random.Generator) -> np.ndarray:
    """A multiplier in 0..1: light falling off linearly in a random direction, or a soft cast shadow."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if level == "shadow":  # a hand or phone shadow: a soft-edged dark half-plane
        angle = rng.uniform(0, 2 * np.pi)
        d = (xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle) - rng.uniform(-0.2, 0.2) * w
        return (1 - 0.5 / (1 + np.exp(-d / (0.06 * w)))).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    d = (xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle)
    d = (d - d.min()) / max(float(np.ptp(d)), 1.0)
    return (1 - float(level) * d).astype(np.float32)


def _lines(picture: np.ndarray, ink: np.ndarray, level: str, rng: np.random.Generator) -> np.ndarray:
    """Notebook lines printed on the paper, under the ink: light blue ruled, grey squared, or dark ruled."""
    h, w = picture.shape[:2]
    colour = {"ruled": (150, 180, 225), "squared": (170, 170, 180), "ruled-dark": (60, 60, 70)}[level]
    spacing = rng.uniform(0.2, 0.3) * h
    phase = rng.uniform(0, spacing)
    tilt = rng.uniform(-1.5, 1.5)
    layer = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE))
    draw = ImageDraw.Draw(layer)
    big = SUPERSAMPLE
    slope = math.tan(math.radians(tilt))
    width = max(1, round(rng.uniform(0.8, 1.5) * big))
    y = phase
    while y < h:
        draw.line([(0, y * big), (w * big, (y + w * slope) * big)], fill=255, width=width)
        y += spacing
    if level == "squared":
        x = phase
        while x < w:
            draw.line([(x * big, 0), ((x - h * slope) * big, h * big)], fill=255, width=width)
            x += spacing
    lines = _reduce(layer)[..., None] * (1 - ink[..., None])  # ink covers the lines
    return picture * (1 - lines) + np.asarray(colour, np.float32) * lines


def _specks(
    picture: np.ndarray, ink: np.ndarray, count: int, colour: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """Dots of 1-3 pixels (dust, pen taps) in the margin, away from the digit."""
    h, w = ink.shape
    layer = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE))
    draw = ImageDraw.Draw(layer)
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.05), np.flatnonzero(ink.max(axis=0) > 0.05)
    placed = 0
    while placed < count:
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if rows[0] - 3 <= y <= rows[-1] + 3 and cols[0] - 3 <= x <= cols[-1] + 3:
            continue
        r = rng.uniform(0.5, 1.5) * SUPERSAMPLE
        draw.ellipse(
            (x * SUPERSAMPLE - r, y * SUPERSAMPLE - r, x * SUPERSAMPLE + r, y * SUPERSAMPLE + r), fill=255
        )
        placed += 1
    dots = _reduce(layer)[..., None]
    return picture * (1 - dots) + np.asarray(colour, np.float32) * dots


def _blur(picture: np.ndarray, radius: float) -> np.ndarray:
    rgb = Image.fromarray(np.clip(np.rint(picture), 0, 255).astype(np.uint8))
    return np.asarray(rgb.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)


# --------------------------------------------------------------------------- phone photo


def photo(label: int = 3, *, size: tuple[int, int] = (4000, 3000), seed: int = 0) -> np.ndarray:
    """A phone-photo-like picture (H, W, 3) uint8: a drawn digit a fifth of the frame high,
    somewhat off-centre, on paper lit unevenly, with sensor noise. 12 megapixels by default."""
    rng = np.random.default_rng(seed)
    width, height = size
    ink = drawn(label, Writer.from_seed(seed), rng)
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.02), np.flatnonzero(ink.max(axis=0) > 0.02)
    glyph = Image.fromarray(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    scale = (height / 5) / glyph.height
    glyph = glyph.resize((round(glyph.width * scale), round(glyph.height * scale)), Image.Resampling.BICUBIC)
    coverage = np.zeros((height, width), np.float32)
    top, left = int(height * 0.35), int(width * 0.55)
    g = np.clip(np.asarray(glyph, np.float32), 0, 1)[: height - top, : width - left]
    coverage[top : top + g.shape[0], left : left + g.shape[1]] = g
    # Lighting varies slowly: computed small, then enlarged.
    light = _lighting((height // 16, width // 16), 0.35, rng)
    light = np.asarray(Image.fromarray(light).resize(size, Image.Resampling.BILINEAR), np.float32)
    out = np.empty((height, width, 3), np.uint8)
    noise = rng.normal(0, 3, size=(height, width)).astype(np.float32)
    for c, (paper, ink_level) in enumerate(zip((235, 232, 225), (30, 30, 45), strict=True)):
        channel = (paper + (ink_level - paper) * coverage) * light + noise
        out[..., c] = np.clip(channel, 0, 255)
    return out
