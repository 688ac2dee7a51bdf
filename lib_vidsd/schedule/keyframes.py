"""Deforum keyframe strings → per-frame series (motion, strength, cfg, seed, sampler…).

The syntax is Deforum's (``FrameInterpolater.parse_inbetweens``)::

    0: (1.0), 10: (1.5), "max_f-10": (1 + 0.02*sin(t/5))

Items are ``key: value`` separated by commas. A key is a frame number or an expression in ``max_f``
(``num_frames - 1``) and ``s`` (the seed), optionally quoted, truncated to an int. A value is a
*number* when, without quotes and parentheses, it is exactly ``[+-]digits[.digits]``: numbers ramp
linearly to the next number. Anything else (``( 1.0 )`` and ``1e-3`` included, as in Deforum) is an
*expression* in ``t`` (= ``i``, the frame), ``max_f`` and ``s``: it is evaluated at every frame from
its key up to the next key, so it holds its own formula and is never blended toward the next key.
Keys below 0 or at/after ``num_frames`` are ignored; a key written twice keeps its last value; the
last value is held to the end; an expression that gives NaN leaves a gap filled by the ramp.

What we fix (see ``fixtures/keyframes/README.md``): commas inside expressions and quotes parse
(``where(t>5, 1, 0)``); a missing frame-0 key holds the first key's value back to frame 0 (Deforum
crashes); a trailing comma is allowed; ``t//2`` works (as numexpr ≥ 2.14); no pandas. Expressions
are read with :mod:`ast` and only numbers, those names, arithmetic, comparisons and the numexpr
math functions below are allowed. Every mistake raises :class:`~lib_vidsd.errors.ConfigError`
naming the field, the key and its character position.
"""

from __future__ import annotations

import ast
import logging
import math
import operator
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError

log = logging.getLogger("vidsd.schedule.keyframes")

NUMBER_VALUE = re.compile(r"[+-]?\d+(\.\d+)?")
INT_KEY = re.compile(r"[+-]?\d+")
MAX_EXPRESSION_CHARS = 1000
MAX_POWER_EXPONENT = 1024

# The functions numexpr offers (Deforum evaluates with numexpr), on float64.
FUNCTIONS: dict[str, Callable[..., float]] = {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "arctan2": np.arctan2,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arcsinh": np.arcsinh,
    "arccosh": np.arccosh,
    "arctanh": np.arctanh,
    "log": np.log,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "floor": np.floor,
    "ceil": np.ceil,
    "where": lambda cond, a, b: a if cond else b,
}

BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
UNARY: dict[type, Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


@dataclass(frozen=True)
class Item:
    """One ``key: value`` item as written: the raw texts and where each starts in the whole string."""

    key: str
    value: str
    key_pos: int
    value_pos: int


@dataclass(frozen=True)
class Key:
    """A resolved keyframe: frame, value text, and the character where the item starts."""

    frame: int
    value: str
    pos: int


class _Evaluator:
    """Evaluates a parsed expression on float64 with the given names; rejects anything else."""

    def __init__(self, names: dict[str, float]):
        self.names = names

    def __call__(self, node: ast.AST) -> float:
        handler = getattr(self, f"_{type(node).__name__}", None)
        if handler is None:
            raise ValueError(f"{type(node).__name__} is not allowed")
        return handler(node)

    def _Expression(self, node: ast.Expression) -> float:
        return self(node.body)

    def _Constant(self, node: ast.Constant) -> float:
        if not isinstance(node.value, (bool, int, float)):  # True is 1, as in numexpr
            raise ValueError(f"{node.value!r} is not a number")
        return np.float64(node.value)

    def _Name(self, node: ast.Name) -> float:
        if node.id not in self.names:
            raise ValueError(f"unknown name {node.id!r}; known: {', '.join(self.names)}")
        return np.float64(self.names[node.id])

    def _UnaryOp(self, node: ast.UnaryOp) -> float:
        if type(node.op) not in UNARY:
            raise ValueError(f"operator {type(node.op).__name__} is not allowed")
        return UNARY[type(node.op)](self(node.operand))

    def _BinOp(self, node: ast.BinOp) -> float:
        if type(node.op) not in BINARY:
            raise ValueError(f"operator {type(node.op).__name__} is not allowed")
        left, right = self(node.left), self(node.right)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ValueError("division by zero")
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER_EXPONENT:
            raise ValueError(f"exponent {right} is larger than {MAX_POWER_EXPONENT}")
        return BINARY[type(node.op)](left, right)

    def _Compare(self, node: ast.Compare) -> float:
        left = self(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            if type(op) not in COMPARE:
                raise ValueError(f"comparison {type(op).__name__} is not allowed")
            right = self(comparator)
            if not COMPARE[type(op)](left, right):
                return np.float64(0.0)
            left = right
        return np.float64(1.0)

    def _Call(self, node: ast.Call) -> float:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS or node.keywords:
            raise ValueError(f"unknown function; known: {', '.join(FUNCTIONS)}")
        try:
            return np.float64(FUNCTIONS[name](*(self(arg) for arg in node.args)))
        except TypeError as e:
            raise ValueError(f"{name}: wrong number of arguments") from e


def compile_expression(text: str) -> ast.Expression:
    """Parse ``text`` as one arithmetic expression (raises ``ValueError`` on anything else)."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        with warnings.catch_warnings():  # "1if" and the like warn before failing; the error says enough
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ValueError(f"not an expression ({type(e).__name__})") from e


def evaluate(tree: ast.Expression, names: dict[str, float]) -> float:
    """Value of a compiled expression with ``names`` in scope, as a Python float (may be NaN/inf)."""
    with np.errstate(all="ignore"):
        try:
            return float(_Evaluator(names)(tree))
        except (OverflowError, RecursionError) as e:
            raise ValueError(f"cannot evaluate ({type(e).__name__})") from e


def split_items(text: str, field: str = "schedule") -> list[Item]:
    """Cut ``text`` into ``key: value`` items at commas outside parentheses and quotes.

    A trailing comma is allowed; an empty item elsewhere, a missing colon or unbalanced
    parentheses raise :class:`ConfigError` with the character position.
    """
    items, depth, quote, start = [], 0, "", 0
    for pos, char in enumerate(text + ","):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(field, text, "balanced parentheses", f"unmatched ')' at character {pos}")
        elif char == "," and depth == 0:
            items.append((start, text[start:pos]))
            start = pos + 1
    if quote or depth:
        raise ConfigError(field, text, "balanced parentheses and quotes", "unclosed at the end of the text")
    if items and not items[-1][1].strip() and len(items) > 1:
        items.pop()  # trailing comma
    return [_item(chunk, start, text, field) for start, chunk in items]


def _item(chunk: str, start: int, text: str, field: str) -> Item:
    """Split one chunk at its first colon outside quotes."""
    quote = ""
    for offset, char in enumerate(chunk):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ":":
            key, value = chunk[:offset], chunk[offset + 1 :]
            key_pos = start + len(key) - len(key.lstrip())
            return Item(key, value, key_pos, start + offset + 1 + len(value) - len(value.lstrip()))
    hint = f"item at character {start + len(chunk) - len(chunk.lstrip())} ({chunk.strip()!r}) has no colon"
    raise ConfigError(field, text, "comma-separated 'frame: (value)' items", hint)


def _strip_brackets(text: str) -> str:
    """The trimmed text without quotes and parentheses (how Deforum classifies values: inner spaces
    stay, so ``( 1.0 )`` is an expression)."""
    return re.sub(r"[\"'()]", "", text.strip())


def _unquote(text: str) -> str:
    """Remove one pair of surrounding quotes, as Deforum does for key expressions."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def key_frame(item: Item, num_frames: int, seed: int, text: str, field: str) -> int:
    """The frame a key names: an integer, or an expression in ``max_f`` and ``s`` truncated to int."""
    plain = _strip_brackets(item.key)
    if INT_KEY.fullmatch(plain):
        return int(plain)
    where = f"key {item.key.strip()!r} at character {item.key_pos}"
    try:
        value = evaluate(compile_expression(_unquote(item.key)), {"max_f": num_frames - 1, "s": seed})
    except ValueError as e:
        raise ConfigError(field, text, "integer frames or expressions in max_f, s", f"{where}: {e}") from e
    if not math.isfinite(value) or re.fullmatch(r"[+-]?\d*\.\d*", plain):
        raise ConfigError(field, text, "integer frames", f"{where} is not a whole frame number")
    return int(value)


def parse_keys(text: str, num_frames: int, *, seed: int = -1, field: str = "schedule") -> list[Key]:
    """Keyframes of a Deforum string, sorted by frame, last one written winning a repeated frame.

    Keys outside ``0 .. num_frames-1`` are dropped (Deforum ignores them; they do not pull ramps).
    """
    if num_frames < 1:
        raise ConfigError("num_frames", num_frames, "1 or more")
    if not text.strip():
        raise ConfigError(field, text, "comma-separated 'frame: (value)' items", "the text is empty")
    keys: dict[int, Key] = {}
    for item in split_items(text, field):
        if not item.key.strip():
            raise ConfigError(field, text, "'frame: value' items", f"empty key at character {item.key_pos}")
        frame = key_frame(item, num_frames, seed, text, field)
        if 0 <= frame < num_frames:
            keys[frame] = Key(frame, item.value, item.key_pos)
    if not keys:
        raise ConfigError(field, text, f"at least one key in frames 0..{num_frames - 1}")
    return [keys[frame] for frame in sorted(keys)]


def _value_fn(key: Key, num_frames: int, seed: int, text: str, field: str) -> Callable[[int], float]:
    """A function of the frame for one key's value: constant for numbers, the formula otherwise."""
    plain = _strip_brackets(key.value)
    if NUMBER_VALUE.fullmatch(plain):
        number = float(plain)
        return lambda frame: number
    where = f"value of key {key.frame} at character {key.pos}"
    try:
        tree = compile_expression(key.value)
    except ValueError as e:
        raise ConfigError(field, text, "numbers or expressions in t, max_f, s", f"{where}: {e}") from e

    def at(frame: int) -> float:
        try:
            return evaluate(tree, {"t": frame, "i": frame, "max_f": num_frames - 1, "s": seed})
        except ValueError as e:
            raise ConfigError(field, text, "numbers or expressions in t, max_f, s", f"{where}: {e}") from e

    at(key.frame)  # reject a bad formula even when no frame would reach it
    return at


def _fill(values: np.ndarray, field: str, text: str) -> list[float]:
    """Ramp linearly over NaN gaps by frame index, holding the ends (Deforum's pandas interpolate)."""
    known = np.flatnonzero(~np.isnan(values))
    if known.size == 0:
        raise ConfigError(field, text, "at least one key whose value is a number", "every value is NaN")
    frames = np.arange(values.size, dtype=np.float64)
    return np.interp(frames, known.astype(np.float64), values[known]).tolist()


def parse_series(text: str, num_frames: int, *, seed: int = -1, field: str = "schedule") -> list[float]:
    """Per-frame values ``[num_frames]`` of a Deforum keyframe string (see the module docstring).

    Args:
        text: e.g. ``"0: (1.0), 10: (1.5)"`` or ``"0: (1 + 0.02*sin(t/5))"``.
        num_frames: frames of the animation (``max_f = num_frames - 1``).
        seed: the run's seed, the name ``s`` in keys and values.
        field: the parameter name used in errors (``zoom``, ``strength_schedule``…).

    Raises:
        ConfigError: malformed text, a non-integer key, an unknown name or function, division by
            zero, no key inside the clip, or only NaN values.
    """
    keys = parse_keys(text, num_frames, seed=seed, field=field)
    values = np.full(num_frames, np.nan)
    bounds = [key.frame for key in keys[1:]] + [num_frames]
    for key, end in zip(keys, bounds, strict=True):
        fn = _value_fn(key, num_frames, seed, text, field)
        is_number = NUMBER_VALUE.fullmatch(_strip_brackets(key.value)) is not None
        frames = [key.frame] if is_number else range(key.frame, end)
        for frame in frames:
            values[frame] = fn(frame)
    first = keys[0]
    if first.frame > 0:  # our fix: hold the first key's value back to frame 0
        values[: first.frame] = values[first.frame]
    log.debug("%s: %d keys over %d frames", field, len(keys), num_frames)
    return _fill(values, field, text)


def parse_seed_schedule(text: str, num_frames: int, *, seed: int, field: str = "seed_schedule") -> list[int]:
    """Per-frame seeds: :func:`parse_series` with ``s`` = ``seed``, each value a whole number.

    Deforum's default ``0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)`` gives the seed on frame 0
    and the last two frames and -1 (random) between.
    """
    seeds = []
    for frame, value in enumerate(parse_series(text, num_frames, seed=seed, field=field)):
        if not math.isfinite(value) or value != int(value):
            raise ConfigError(field, text, "whole-number seeds", f"frame {frame} gets {value}")
        seeds.append(int(value))
    return seeds


def parse_string_schedule(text: str, num_frames: int, *, seed: int = -1, field: str = "schedule") -> list[str]:
    """Per-frame strings (sampler, checkpoint): each key's text, quotes and parentheses removed, held
    until the next key; frames before the first key take its text (Deforum crashes there)."""
    keys = parse_keys(text, num_frames, seed=seed, field=field)
    out: list[str] = []
    bounds = [key.frame for key in keys[1:]] + [num_frames]
    for index, (key, end) in enumerate(zip(keys, bounds, strict=True)):
        start = 0 if index == 0 else key.frame
        out.extend([_strip_brackets(key.value)] * (end - start))
    return out
