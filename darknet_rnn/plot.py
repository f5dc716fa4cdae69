"""A minimal PNG line plot (zlib + struct, no plotting library).

`write_png(path, rgb)` writes an (h, w, 3) uint8 array as an 8-bit RGB PNG;
`line_plot(path, series, ...)` draws one or more (xs, ys) series on shared
axes with tick labels and a legend in a built-in 5x7 pixel font. Used by
`darknet-rnn train --plot` for training and validation loss.

Invariant: pixel arrays are (height, width, 3) uint8, row 0 at the top.
"""
import math
import os
import struct
import zlib

import numpy as np

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (225, 225, 225)
COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))

# --------------------------------------------------------------------------
# PNG

def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(rgb) -> bytes:
    """The PNG encoding of an (h, w, 3) uint8 image (filter 0 on every row)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) image, got shape {rgb.shape}")
    h, w, _ = rgb.shape
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)   # leading filter byte 0 per row
    raw[:, 1:] = rgb.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit truecolour
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + _chunk(b"IEND", b""))


def write_png(path, rgb):
    """Write the image atomically (temporary file, then rename)."""
    data = png_bytes(rgb)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_png_size(path):
    """(width, height) from a PNG header (for tests and sanity checks)."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


# --------------------------------------------------------------------------
# font: 5x7 glyphs, each row a 5-bit mask (MSB = leftmost pixel)

_GLYPHS = {
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    ".": (0, 0, 0, 0, 0, 12, 12), "-": (0, 0, 0, 31, 0, 0, 0),
    ":": (0, 12, 12, 0, 12, 12, 0), "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8), "/": (1, 1, 2, 4, 8, 16, 16),
    "_": (0, 0, 0, 0, 0, 0, 31), " ": (0,) * 7,
    "a": (0, 0, 14, 1, 15, 17, 15), "b": (16, 16, 22, 25, 17, 17, 30),
    "c": (0, 0, 14, 16, 16, 17, 14), "d": (1, 1, 13, 19, 17, 17, 15),
    "e": (0, 0, 14, 17, 31, 16, 14), "f": (6, 9, 8, 28, 8, 8, 8),
    "g": (0, 15, 17, 17, 15, 1, 14), "h": (16, 16, 22, 25, 17, 17, 17),
    "i": (4, 0, 12, 4, 4, 4, 14), "j": (2, 0, 6, 2, 2, 18, 12),
    "k": (16, 16, 18, 20, 24, 20, 18), "l": (12, 4, 4, 4, 4, 4, 14),
    "m": (0, 0, 26, 21, 21, 17, 17), "n": (0, 0, 22, 25, 17, 17, 17),
    "o": (0, 0, 14, 17, 17, 17, 14), "p": (0, 0, 30, 17, 30, 16, 16),
    "q": (0, 0, 13, 19, 15, 1, 1), "r": (0, 0, 22, 25, 16, 16, 16),
    "s": (0, 0, 14, 16, 14, 1, 30), "t": (8, 8, 28, 8, 8, 9, 6),
    "u": (0, 0, 17, 17, 17, 19, 13), "v": (0, 0, 17, 17, 17, 10, 4),
    "w": (0, 0, 17, 17, 21, 21, 10), "x": (0, 0, 17, 10, 4, 10, 17),
    "y": (0, 0, 17, 17, 15, 1, 14), "z": (0, 0, 31, 2, 4, 8, 31),
}
_GLYPH_W, _GLYPH_H, _ADVANCE = 5, 7, 6


def text_width(s):
    return len(s) * _ADVANCE - 1 if s else 0


def draw_text(img, x, y, s, color=BLACK):
    """Draw `s` with its top-left corner at (x, y); unknown characters are
    drawn as blanks (upper case is drawn as lower case)."""
    h, w, _ = img.shape
    for k, ch in enumerate(s):
        rows = _GLYPHS.get(ch, _GLYPHS.get(ch.lower(), _GLYPHS[" "]))
        for r, bits in enumerate(rows):
            for c in range(_GLYPH_W):
                if bits & (1 << (_GLYPH_W - 1 - c)):
                    px, py = x + k * _ADVANCE + c, y + r
                    if 0 <= px < w and 0 <= py < h:
                        img[py, px] = color


# --------------------------------------------------------------------------
# drawing

def draw_line(img, x0, y0, x1, y1, color, width=1):
    """Bresenham line between integer points, `width` pixels thick."""
    h, w, _ = img.shape
    x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    half = width // 2
    while True:
        y_lo, y_hi = max(0, y0 - half), min(h, y0 - half + width)
        x_lo, x_hi = max(0, x0 - half), min(w, x0 - half + width)
        if y_lo < y_hi and x_lo < x_hi:
            img[y_lo:y_hi, x_lo:x_hi] = color
        if x0 == x1 and y0 == y1:
            break
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def nice_ticks(lo, hi, target=6):
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(0.0 if abs(v) < step * 1e-9 else v)
        v += step
    return ticks


def _tick_label(v, step):
    if step >= 1 and float(v).is_integer():
        return str(int(v))
    decimals = max(0, -int(math.floor(math.log10(step)))) if step > 0 else 2
    return f"{v:.{decimals}f}"


def line_plot(path, series, width=720, height=420, title="", xlabel="", ylabel=""):
    """Write a PNG line plot.

    series: list of (label, xs, ys); NaN/inf points are skipped. Colours
    cycle through COLORS. The y range covers all finite points.
    """
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = WHITE
    left, right, top, bottom = 58, 16, 28 if title else 14, 40
    pw, ph = width - left - right, height - top - bottom
    pts = []
    for label, xs, ys in series:
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        ok = np.isfinite(xs) & np.isfinite(ys)
        pts.append((label, xs[ok], ys[ok]))
    allx = np.concatenate([p[1] for p in pts]) if pts else np.zeros(0)
    ally = np.concatenate([p[2] for p in pts]) if pts else np.zeros(0)
    x_lo, x_hi = (float(allx.min()), float(allx.max())) if allx.size else (0.0, 1.0)
    y_lo, y_hi = (float(ally.min()), float(ally.max())) if ally.size else (0.0, 1.0)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    xt, yt = nice_ticks(x_lo, x_hi, 7), nice_ticks(y_lo, y_hi, 6)

    def px(x):
        return left + (x - x_lo) / (x_hi - x_lo) * (pw - 1)

    def py(y):
        return top + (y_hi - y) / (y_hi - y_lo) * (ph - 1)

    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    for v in xt:
        x = int(round(px(v)))
        img[top:top + ph, x] = GREY
        lab = _tick_label(v, xstep)
        draw_text(img, x - text_width(lab) // 2, top + ph + 5, lab)
    for v in yt:
        y = int(round(py(v)))
        img[y, left:left + pw] = GREY
        lab = _tick_label(v, ystep)
        draw_text(img, left - 5 - text_width(lab), y - 3, lab)
    img[top:top + ph, left] = BLACK
    img[top + ph - 1, left:left + pw] = BLACK
    if title:
        draw_text(img, left + (pw - text_width(title)) // 2, 8, title)
    if xlabel:
        draw_text(img, left + (pw - text_width(xlabel)) // 2, height - 14, xlabel)
    if ylabel:
        draw_text(img, 4, top - 12 if top >= 14 else 2, ylabel)
    for k, (label, xs, ys) in enumerate(pts):
        color = COLORS[k % len(COLORS)]
        if xs.size == 1:
            x, y = px(xs[0]), py(ys[0])
            draw_line(img, x - 2, y, x + 2, y, color, 2)
        for i in range(xs.size - 1):
            draw_line(img, px(xs[i]), py(ys[i]), px(xs[i + 1]), py(ys[i + 1]), color, 2)
        # legend, top right
        lx = left + pw - 110
        ly = top + 8 + 12 * k
        img[ly + 2:ly + 5, lx:lx + 14] = color
        draw_text(img, lx + 18, ly, label)
    write_png(path, img)
    return path
