"""Interpolation curves between prompt keyframes, and the keyframed-DSL curves Giffusion uses.

A *weight function* maps a segment (``start``, ``end`` frames, inclusive) to ``end - start + 1``
slerp weights (Giffusion's ``get_interpolation_schedule``):

* ``linear``: ``linspace(0, 1, n)``;
* ``sine``: with ``x_i = i / n`` (so x never reaches 1), the sum over the frequencies of
  ``sin²(π f x_i)``, min-max normalised to 0..1 (f = 1 rises and falls back; f = 0.5 eases to 1);
* ``curve``: a keyframed-DSL curve read at the segment's **absolute** frames, not normalised.

The DSL (``keyframed.dsl.curve_from_cn_string``) is ``frame: (number)`` items separated by commas:
linear between keys, held after the last, and a missing frame 0 takes the first key's value.
What we fix: a sine with no frequency means 1 (Giffusion raises), frequency 0 is refused (NaN
there), a negative or fractional key is refused (read as 5 for ``-5`` and ``2.5`` there), spaces
before commas are allowed, and unknown curve names are refused instead of falling back to linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError
from .keyframes import split_items

WeightFn = Callable[[int, int], list[float]]
CURVE_NAMES = ("linear", "sine", "curve")


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear curve through ``keys`` (frame → value, sorted, frame 0 present)."""

    keys: tuple[tuple[int, float], ...]

    def __call__(self, frame: int) -> float:
        """Value at ``frame``: keyframed 0.3.14's ``w·y0 + (1 − w)·y1``, held after the last key."""
        previous = self.keys[0]
        for key in self.keys[1:]:
            if frame < key[0]:
                w = (key[0] - frame) / (key[0] - previous[0])
                return w * previous[1] + (1 - w) * key[1]
            previous = key
        return previous[1]

    def values(self, num_frames: int) -> list[float]:
        """``[self(f) for f in range(num_frames)]``."""
        return [self(frame) for frame in range(num_frames)]


def _curve_value(value: str, pos: int, text: str, field: str) -> float:
    """The number inside ``(…)``, read like Python ``float`` (``nan``, ``inf``, ``1e-3`` are fine)."""
    inner = value.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise ConfigError(field, text, "'frame: (number)' items", f"value at character {pos} needs parentheses")
    try:
        return float(inner[1:-1])
    except ValueError as e:
        raise ConfigError(field, text, "'frame: (number)' items", f"value at character {pos} is not a number") from e


def parse_curve(text: str, *, field: str = "curve") -> Curve:
    """A :class:`Curve` from keyframed-DSL text such as ``"0: (0), 20: (90)"``.

    Raises:
        ConfigError: empty text, a key that is not a non-negative integer, a value without
            parentheses or not a number (the message gives the character position).
    """
    if not text.strip():
        raise ConfigError(field, text, "'frame: (number)' items", "the text is empty")
    keys: dict[int, float] = {}
    for item in split_items(text, field):
        key = item.key.strip()
        if not key.isdecimal():
            raise ConfigError(field, text, "non-negative integer frames", f"key {key!r} at character {item.key_pos}")
        keys[int(key)] = _curve_value(item.value, item.value_pos, text, field)
    ordered = sorted(keys.items())
    if ordered[0][0] != 0:
        ordered.insert(0, (0, ordered[0][1]))
    return Curve(tuple(ordered))


def linear_weights(start: int, end: int) -> list[float]:
    """``linspace(0, 1, end - start + 1)``."""
    return np.linspace(0.0, 1.0, end - start + 1).tolist()


def sine_weights(start: int, end: int, frequencies: tuple[float, ...] = (1.0,)) -> list[float]:
    """Sum of ``sin²(π f i/n)`` over ``frequencies``, min-max normalised (all 0 when flat)."""
    n = end - start + 1
    x = np.arange(n) / n
    weights = sum(np.sin(np.pi * f * x) ** 2 for f in frequencies)
    span = weights.max() - weights.min()
    return ((weights - weights.min()) / span).tolist() if span > 0 else [0.0] * n


def parse_frequencies(args: str, *, field: str = "interpolation_args") -> tuple[float, ...]:
    """``"1, 3"`` → ``(1.0, 3.0)``; empty → ``(1.0,)``; zero, non-finite or non-numbers refused."""
    if not args.strip():
        return (1.0,)
    out = []
    for part in args.split(","):
        try:
            value = float(part)
        except ValueError as e:
            raise ConfigError(field, args, "comma-separated sine frequencies", f"{part.strip()!r}") from e
        if value == 0 or not math.isfinite(value):
            raise ConfigError(field, args, "non-zero finite sine frequencies", f"{part.strip()!r}")
        out.append(value)
    return tuple(out)


def weight_function(name: str, args: str = "", *, field: str = "interpolation") -> WeightFn:
    """The weight function for an interpolation type name and its argument text."""
    if name == "linear":
        return linear_weights
    if name == "sine":
        frequencies = parse_frequencies(args, field=f"{field}_args")
        return lambda start, end: sine_weights(start, end, frequencies)
    if name == "curve":
        curve = parse_curve(args, field=f"{field}_args")
        return lambda start, end: [curve(frame) for frame in range(start, end + 1)]
    raise ConfigError(field, name, CURVE_NAMES)
