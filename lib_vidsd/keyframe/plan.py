"""What every frame of a keyframe animation gets: prompts and slerp weight, noise seeds, strength, CFG, motion.

:func:`plan_animation` reads a :class:`~lib_vidsd.config.KeyframeParams` once, with the host's own
prompt, seed and CFG scale, and returns an :class:`AnimationPlan`: one :class:`FramePlan` per frame
and the batches the frames can be rendered in. It does no rendering and touches no file, so the
host (A1111, the diffusers CLI) and the tests see the same numbers.

* Prompt keys come from ``params.prompts`` (``N: text`` lines or Deforum JSON, see
  :mod:`lib_vidsd.schedule.prompt_keys`), the host's prompt appended to each; an empty box
  animates the host's prompt alone. With audio onsets (``audio_keys``) the keys move onto the
  onsets, the prompts taken in turn.
* Between two keys a frame gets ``(prompt_a, prompt_b, weight)``: the host slerps the two text
  embeddings and the two keys' starting noises with that weight (Giffusion). Weights follow the
  interpolation curve, or the audio's accumulated loudness when audio weights are given.
* Each key has a seed: the seed schedule read at the key's frame, or Giffusion's (the run's seed for
  the first key, ``seed_schedule(seed)[k]`` for a key at frame k). ``fixed_latent``: every key uses
  the first key's seed.
* Numeric schedules (strength, CFG, zoom, angle, translation, pivot) are Deforum series over the
  frames (:func:`lib_vidsd.schedule.keyframes.parse_series`), checked frame by frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import KeyframeMode, KeyframeParams
from ..errors import ConfigError
from ..schedule.curves import WeightFn, weight_function
from ..schedule.keyframes import parse_series
from ..schedule.prompt_keys import PromptSchedule, parse_prompt_keyframes
from .latents import seed_schedule

MOTION_FIELDS = ("zoom", "angle", "translation_x", "translation_y", "pivot_x", "pivot_y")


@dataclass(frozen=True)
class FramePlan:
    """One frame: slerp ``weight`` from ``prompt_a``/``seed_a`` (0) to ``prompt_b``/``seed_b`` (1)."""

    index: int
    prompt_a: str
    prompt_b: str
    weight: float
    seed_a: int
    seed_b: int
    strength: float
    cfg_scale: float | None  # None: the host's own CFG scale
    zoom: float = 1.0
    angle: float = 0.0
    translation_x: float = 0.0
    translation_y: float = 0.0
    pivot_x: float = 0.5
    pivot_y: float = 0.5

    @property
    def travels(self) -> bool:
        """Whether this frame is a blend of two keys (not exactly one key's prompt and noise)."""
        return self.weight != 0.0 and (self.prompt_a != self.prompt_b or self.seed_a != self.seed_b)

    @property
    def prompt(self) -> str:
        """The frame's prompt as shown: the key it travels from (``prompt_a``)."""
        return self.prompt_a

    @property
    def seed(self) -> int:
        """The frame's seed as shown: the key it travels from (``seed_a``)."""
        return self.seed_a

    def motion(self) -> dict[str, float]:
        """``warp2d`` keyword arguments for this frame."""
        return {
            "zoom": self.zoom,
            "angle": self.angle,
            "translate_x": self.translation_x,
            "translate_y": self.translation_y,
            "pivot": (self.pivot_x, self.pivot_y),
        }


@dataclass(frozen=True)
class AnimationPlan:
    """Every frame of an animation, its prompt keys ``[(frame, prompt)]`` and the seed of each key."""

    frames: list[FramePlan]
    keys: list[tuple[int, str]]
    key_seeds: dict[int, int]
    fps: float
    mode: KeyframeMode
    img2img: bool = False  # an init image feeds the frames that do not loop back (img2img tab)
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def uses_init(self, index: int) -> bool:
        """Whether frame ``index`` is img2img (has an init image) rather than txt2img from noise."""
        if self.mode is KeyframeMode.VIDEO:
            return True
        if self.mode is KeyframeMode.MOTION_2D and index > 0:
            return True
        return self.img2img

    def batches(self, batch_size: int, *, start: int = 0, sequential: bool = False) -> list[list[FramePlan]]:
        """Frames from ``start`` in render order, grouped ``batch_size`` at a time where nothing ties a frame
        to the one before it: 2D motion (loopback) and ``sequential`` (coherence) render one by one. A batch
        shares its strength, CFG scale and kind (txt2img or img2img), so a change there starts a new one."""
        size = 1 if sequential or self.mode is KeyframeMode.MOTION_2D else max(1, batch_size)
        out: list[list[FramePlan]] = []
        for frame in self.frames[start:]:
            last = out[-1] if out else None
            if last is not None and len(last) < size and self._same_batch(last[0], frame):
                last.append(frame)
            else:
                out.append([frame])
        return out

    def _same_batch(self, a: FramePlan, b: FramePlan) -> bool:
        same_kind = self.uses_init(a.index) == self.uses_init(b.index)
        return same_kind and a.strength == b.strength and a.cfg_scale == b.cfg_scale


def combine_prompt(key_prompt: str, prompt: str) -> str:
    """A key's prompt with the host's prompt box appended (``key, box``); either may be empty."""
    parts = [p.strip() for p in (key_prompt, prompt) if p and p.strip()]
    return ", ".join(parts)


def resolve_length(
    params: KeyframeParams, *, video_frames: int | None = None, audio_frames: int | None = None
) -> int | None:
    """Frames of the animation when something other than the prompt keys decides it: ``max_frames``,
    else the video's frame count, else the audio's length (``int(duration·fps) + 1``); ``None`` means
    the last prompt key + 1."""
    if params.max_frames:
        return params.max_frames
    if params.mode is KeyframeMode.VIDEO and video_frames:
        return video_frames
    if audio_frames:
        return audio_frames
    return None


def _prompt_schedule(
    params: KeyframeParams, prompt: str, num_frames: int | None, seed: int, onsets: Sequence[int] | None
) -> PromptSchedule:
    if params.prompts.strip():
        schedule = parse_prompt_keyframes(params.prompts, num_frames, seed=seed, field="prompts")
        keys = [(frame, combine_prompt(text, prompt)) for frame, text in schedule.keyframes]
    else:
        keys = [(0, prompt.strip())]
    frames = num_frames if num_frames is not None else keys[-1][0] + 1
    if params.audio_keys:
        if not onsets:
            raise ConfigError("audio_keys", True, "an audio file with onsets (upload one or turn audio_keys off)")
        spots = sorted({f for f in onsets if 0 <= f < frames})
        keys = [(frame, keys[i % len(keys)][1]) for i, frame in enumerate(spots)]
    return PromptSchedule(keys, frames)


def _key_seeds(params: KeyframeParams, key_frames: list[int], num_frames: int, seed: int) -> dict[int, int]:
    """Each key's seed: the seed schedule read at the key's frame (whole numbers; -1 there, or no
    schedule, means Giffusion's: the run's seed for the first key, ``seed_schedule(seed)[k]`` else)."""
    if params.fixed_latent:
        return dict.fromkeys(key_frames, seed)
    drawn = seed_schedule(seed, max(key_frames) + 1)
    seeds = {frame: (seed if i == 0 else drawn[frame]) for i, frame in enumerate(key_frames)}
    text = params.seed_schedule
    if not text.strip():
        return seeds
    values = parse_series(text, num_frames, seed=seed, field="seed_schedule")
    for frame in key_frames:
        value = values[frame]
        if value == -1:
            continue
        if not (math.isfinite(value) and value == int(value) and 0 <= value < 2**53):
            hint = f"the key at frame {frame} gets {value:g}"
            raise ConfigError("seed_schedule", text, "whole-number seeds 0..2**53-1 (or -1) at the prompt keys", hint)
        seeds[frame] = int(value)
    return seeds


def _series(params: KeyframeParams, name: str, n: int, seed: int, low: float | None, high: float | None) -> list[float]:
    text = getattr(params, name)
    values = parse_series(text, n, seed=seed, field=name)
    for frame, value in enumerate(values):
        ok = math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
        if not ok:
            span = f"{'-inf' if low is None else low:g}..{'inf' if high is None else high:g}"
            raise ConfigError(name, text, f"values in {span}", f"frame {frame} gets {value:g}")
    return values


def _segment_of(keys: list[int], frame: int) -> tuple[int, int]:
    """Indices ``(i, j)`` of the keys frame ``frame`` blends between (equal outside the keys)."""
    if frame <= keys[0] or len(keys) == 1:
        return (0, 0) if frame < keys[0] or len(keys) == 1 else (0, 1)
    if frame >= keys[-1]:
        return (len(keys) - 2, len(keys) - 1) if frame == keys[-1] else (len(keys) - 1, len(keys) - 1)
    for i in range(len(keys) - 1):
        if keys[i] <= frame < keys[i + 1]:
            return i, i + 1
    raise AssertionError(frame)


def plan_animation(
    params: KeyframeParams,
    *,
    prompt: str,
    seed: int,
    cfg_scale: float | None = None,
    fps: float | None = None,
    video_frames: int | None = None,
    audio_frames: int | None = None,
    onsets: Sequence[int] | None = None,
    audio_weights: WeightFn | None = None,
    img2img: bool = False,
) -> AnimationPlan:
    """The frames of the animation ``params`` describes.

    Args:
        prompt, seed, cfg_scale: the host's own (``seed`` already fixed, not -1).
        fps: the animation's rate (``params.fps``, or the video's, or 10): only recorded.
        video_frames: frames of the input video (mode ``video``).
        audio_frames, onsets, audio_weights: from :mod:`lib_vidsd.keyframe.audio` when audio is given.
        img2img: an init image feeds the frames (A1111's img2img tab).

    Raises:
        ConfigError: any schedule or prompt text that does not parse, a value out of range on some
            frame (the message names the field and the frame), ``mode: video`` without a video.
    """
    if params.mode is KeyframeMode.VIDEO and not video_frames:
        raise ConfigError("video", None, "an input video for mode 'video'")
    length = resolve_length(params, video_frames=video_frames, audio_frames=audio_frames)
    schedule = _prompt_schedule(params, prompt, length, seed, onsets)
    n = schedule.num_frames
    if n > 5000:
        raise ConfigError("max_frames", n, "1..5000")
    weights = audio_weights if audio_weights is not None and params.audio_weights else None
    if weights is None:
        weights = weight_function(params.interpolation.value, params.interpolation_args, field="interpolation")
    rows = schedule.rows(weights)
    key_frames = [frame for frame, _ in schedule.keyframes]
    key_seeds = _key_seeds(params, key_frames, n, seed)
    strength = _series(params, "strength", n, seed, 0.0, 1.0)
    cfg = _series(params, "cfg_scale", n, seed, 0.0, 100.0) if params.cfg_scale.strip() else [cfg_scale] * n
    motion = {name: [0.0] * n for name in MOTION_FIELDS}
    if params.mode is KeyframeMode.MOTION_2D:
        motion["zoom"] = _series(params, "zoom", n, seed, 0.01, 100.0)
        motion["angle"] = _series(params, "angle", n, seed, -3600.0, 3600.0)
        for name in ("translation_x", "translation_y"):
            motion[name] = _series(params, name, n, seed, -1e5, 1e5)
        for name in ("pivot_x", "pivot_y"):
            motion[name] = _series(params, name, n, seed, -10.0, 10.0)
    else:
        motion.update(zoom=[1.0] * n, pivot_x=[0.5] * n, pivot_y=[0.5] * n)
    frames = []
    for k, (a, b, w) in enumerate(rows):
        i, j = _segment_of(key_frames, k)
        frames.append(
            FramePlan(
                index=k,
                prompt_a=a,
                prompt_b=b,
                weight=float(w),
                seed_a=key_seeds[key_frames[i]],
                seed_b=key_seeds[key_frames[j]],
                strength=float(strength[k]),
                cfg_scale=None if cfg[k] is None else float(cfg[k]),
                **{name: float(motion[name][k]) for name in MOTION_FIELDS},
            )
        )
    notes = []
    if not math.isfinite(sum(f.weight for f in frames)):
        raise ConfigError("interpolation_args", params.interpolation_args, "weights that are finite numbers")
    return AnimationPlan(
        frames=frames,
        keys=list(schedule.keyframes),
        key_seeds=key_seeds,
        fps=float(fps or params.fps or 10.0),
        mode=params.mode,
        img2img=img2img,
        notes=notes,
    )


def animation_fps(params: KeyframeParams, video_fps: float | None = None) -> float:
    """``params.fps``, else the input video's rate ÷ ``video_every`` (mode ``video``), else 10."""
    if params.fps:
        return float(params.fps)
    if params.mode is KeyframeMode.VIDEO and video_fps:
        return float(video_fps) / params.video_every
    return 10.0


def audio_inputs(params: KeyframeParams, audio_path: str | None, fps: float) -> dict:
    """The :func:`plan_animation` arguments an audio file gives (none without one): its length in
    frames, its onsets as frames, and loudness weights between keys."""
    if not audio_path:
        return {}
    from .audio import audio_keyframes, audio_weights

    component = params.audio_component.value
    keys = audio_keyframes(audio_path, fps, component)
    weights = audio_weights(audio_path, fps, component, params.audio_reduce.value) if params.audio_weights else None
    return {"audio_frames": keys.frames[-1] + 1, "onsets": keys.frames, "audio_weights": weights}
