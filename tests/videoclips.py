"""Small synthetic clips for the video tests (no files shipped)."""

from __future__ import annotations

import numpy as np

# 12 flat colours far apart, so a lossy codec still decodes each frame to its own colour
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
        [0, 128, 128],
        [128, 128, 0],
    ],
    dtype=np.uint8,
)


def coded(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frame i is a flat colour (PALETTE[i % 12]) with a white square whose position encodes i // 12."""
    out = []
    for i in range(n):
        a = np.empty((height, width, 3), np.uint8)
        a[:] = PALETTE[i % len(PALETTE)]
        k = i // len(PALETTE)
        a[4:12, 4 + 10 * k : 12 + 10 * k] = 255
        out.append(a)
    return out


def identify(frame: np.ndarray) -> int:
    """Inverse of :func:`coded` for a (possibly lossy) decoded frame."""
    centre = frame[frame.shape[0] // 2 :, :].reshape(-1, 3).astype(float).mean(0)
    colour = int(np.argmin(((PALETTE.astype(float) - centre) ** 2).sum(1)))
    row = frame[4:12].astype(float).mean((0, 2))
    k = int(
        np.argmax([row[4 + 10 * j : 12 + 10 * j].mean() if 12 + 10 * j <= frame.shape[1] else -1 for j in range(6)])
    )
    return k * len(PALETTE) + colour


def few_colours(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Moving blocks in at most 8 colours: a palette format can store them exactly."""
    out = []
    for i in range(n):
        a = np.empty((height, width, 3), np.uint8)
        a[:] = PALETTE[0]
        a[8:20, (3 * i) % (width - 10) : (3 * i) % (width - 10) + 10] = PALETTE[1]
        a[height - 14 : height - 4, 20:40] = PALETTE[2 + i % 4]
        out.append(a)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
