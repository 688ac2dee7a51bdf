"""Video stylisation on a diffusers Stable Diffusion model: what ``python -m lib_vidsd stylize`` runs.

DiffSynth's ``VideoStylizingPipeline`` semantics (alibaba/EasyNLP ``diffusion/DiffSynth``), step-major:
every sampling step runs the UNet over the whole clip (in chunks of ``chunk_size`` frames through
:func:`lib_vidsd.stylize.chunked_unet_call`) before the next step starts.

* img2img at ``denoising_strength``: the last ``int(steps × strength)`` timesteps (1.0 starts from
  noise); one noise tensor for all frames (``fixed_noise``) or one per frame (seed + frame index);
* classifier-free guidance with both halves in one call (``[uncond…, cond…]``);
* :class:`~lib_vidsd.attention.combine.CombineAttention` with ``combine_pattern`` on the UNet and on each
  ControlNet; reference images VAE-encoded once and noised per step (:class:`ReferenceLatents`);
* optional ControlNets from local folders/files; their control images are the source frames through
  a model-free processor (``tile``: the frame, ``canny``: OpenCV's Canny edges), gathered per chunk;
* the in-loop smoother at the steps :class:`SmootherSchedule` names: the predicted clean latents are
  decoded, deflickered with the source frames as guide, encoded, and turned back into the step's noise
  prediction (DiffSynth's ``return_to_timestep``);
* then :class:`~lib_vidsd.stylize.StylizeJob` (post deflicker, frames, videos).

The UNet and the ControlNets are restored in a ``finally`` (also after an exception or an interrupt).
Latents are ``(F, 4, H/8, W/8)``; a UNet call gets ``halves × F`` rows (unconditional frames, then
conditional frames).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import DeflickerMode, GenerationParams, StylizeParams
from ..errors import ConfigError, IncompatibleModelError
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..stylize import (
    ReferenceLatents,
    SmootherSchedule,
    StylizeJob,
    StylizeResult,
    alpha_prod_at,
    chunked_unet_call,
    decode_references,
    noise_from_prediction,
    smooth_predicted,
    stylize_infotext,
)
from .animate import SDModel, encode_prompts, make_scheduler

log = logging.getLogger("vidsd.pipelines.stylize")

PROCESSORS = ("tile", "identity", "canny")
DECODE_CHUNK = 8


# --- ControlNets --------------------------------------------------------------------------------


def load_controlnet(path: str | Path, *, device: Any = "cpu", dtype: torch.dtype = torch.float32) -> nn.Module:
    """A diffusers ``ControlNetModel`` from a LOCAL folder (``from_pretrained``) or single file."""
    from diffusers import ControlNetModel

    path = Path(path)
    if not path.exists():
        raise ConfigError(
            "controlnet_model_id", str(path), "an existing local folder or file", "local model paths only"
        )
    try:
        if path.is_dir():
            net = ControlNetModel.from_pretrained(str(path), local_files_only=True)
        else:
            net = ControlNetModel.from_single_file(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise IncompatibleModelError(f"cannot load ControlNet {path}: {e}") from e
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False)


def control_image(frame: np.ndarray, processor: str) -> np.ndarray:
    """The control image of a source frame (``uint8 (H, W, 3)``): ``tile``/``identity`` the frame,
    ``canny`` OpenCV's Canny edges (thresholds 100/200, as ControlNet's canny annotator) as white on black."""
    if processor in ("tile", "identity"):
        return frame
    if processor == "canny":
        import cv2

        edges = cv2.Canny(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY), 100, 200)
        return np.repeat(edges[:, :, None], 3, axis=2)
    raise ConfigError(
        "controlnet_processor",
        processor,
        ", ".join(PROCESSORS),
        "annotators that need model weights cannot be downloaded; give control-ready frames with tile",
    )


@dataclass
class ControlNetUnit:
    """A loaded ControlNet, its processor and scale."""

    net: nn.Module
    processor: str = "tile"
    scale: float = 1.0


class _AsUNet(nn.Module):
    """A ControlNet seen as a diffusers UNet without up blocks, so CombineAttention finds its ``attn1``."""

    def __init__(self, controlnet: nn.Module):
        super().__init__()
        self.down_blocks = controlnet.down_blocks
        self.mid_block = controlnet.mid_block
        self.up_blocks = nn.ModuleList()


class _Attentions:
    """Several CombineAttention patches driven as one (the UNet's and each ControlNet's)."""

    def __init__(self, patches: list[Any]):
        self.patches = patches

    def begin_step(self) -> None:
        for p in self.patches:
            p.begin_step()

    @contextmanager
    def batch(self, frames: Sequence[int], references: Sequence[int] = ()):
        with ExitStack() as stack:
            for p in self.patches:
                stack.enter_context(p.batch(frames=frames, references=references))
            yield self

    def restore(self) -> None:
        for p in reversed(self.patches):
            p.restore()


# --- the renderer -------------------------------------------------------------------------------


@dataclass
class SmootherSettings:
    """In-loop smoother settings not in :class:`StylizeParams` (DiffSynth's smoother ``postprocessing``,
    and patch-match settings of its own); ``None`` takes the params' ``patch_size``/``guide_weight``."""

    patch_size: int | None = None
    guide_weight: float | None = None
    contrast: float = 1.0
    sharpness: float = 1.0


@dataclass
class StylizeRenderer:
    """Renders a clip's frames with DiffSynth's pipeline (see the module docstring).

    ``sd``: the model; ``gen``: prompt, negative prompt, steps, CFG scale, seed (resolved, not -1),
    scheduler, strength; ``params``: the stylisation settings; ``controlnets``: loaded units.
    """

    sd: SDModel
    gen: GenerationParams
    params: StylizeParams
    controlnets: list[ControlNetUnit] = field(default_factory=list)
    smoother: SmootherSettings = field(default_factory=SmootherSettings)
    progress: ProgressSink | None = None
    stop: StopToken | None = None

    def render(self, frames: Sequence[np.ndarray], references: Sequence[np.ndarray] = ()) -> list[np.ndarray]:
        """``frames`` (uint8 RGB at the generation size) → as many rendered frames."""
        from ..patching import restore_all

        for net in (self.sd.unet, *(u.net for u in self.controlnets)):
            restore_all(net)  # whatever a crashed job left
        attention = self._attention(len(frames))
        try:
            with torch.no_grad():
                return self._render(frames, references, attention)
        finally:
            attention.restore()

    def _attention(self, n: int) -> _Attentions:
        from ..attention import CombineAttention

        patches: list[Any] = []
        try:
            patches.append(CombineAttention(self.sd.unet, self.params.combine_pattern, num_frames=n))
            for unit in self.controlnets:
                patches.append(CombineAttention(_AsUNet(unit.net), self.params.combine_pattern, num_frames=n))
        except BaseException:
            _Attentions(patches).restore()
            raise
        return _Attentions(patches)

    # --- pieces ------------------------------------------------------------------------------

    def _encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        sd = self.sd
        x = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in images]) / 127.5 - 1.0)
        x = x.permute(0, 3, 1, 2).to(sd.device, sd.dtype)
        return sd.vae.encode(x).latent_dist.mean * sd.latent_scale  # the mean: the seed alone fixes the result

    def _encode_all(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.cat([self._encode(images[i : i + DECODE_CHUNK]) for i in range(0, len(images), DECODE_CHUNK)])

    def _decode(self, latents: torch.Tensor) -> list[np.ndarray]:
        images = self.sd.vae.decode(latents / self.sd.latent_scale).sample.float()
        pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(p) for p in pixels]

    def _noise(self, n: int, shape: tuple[int, ...]) -> torch.Tensor:
        seed = self.gen.seed
        if self.params.fixed_noise:
            one = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            return one[None].expand(n, *shape).clone()
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed + k)) for k in range(n)])

    def _controls(self, frames: Sequence[np.ndarray], halves: int) -> list[torch.Tensor]:
        """Per ControlNet: ``(halves × F, 3, H, W)`` control images in [0, 1]."""
        out = []
        for unit in self.controlnets:
            images = np.stack([control_image(f, unit.processor) for f in frames]).astype(np.float32) / 255.0
            x = torch.from_numpy(images).permute(0, 3, 1, 2).to(self.sd.device, self.sd.dtype)
            out.append(torch.cat([x] * halves))
        return out

    def _forward(self, x: torch.Tensor, t: Any, context: torch.Tensor, controls: list[torch.Tensor]) -> torch.Tensor:
        down = mid = None
        for unit, image in zip(self.controlnets, controls, strict=True):
            d, m = unit.net(
                x,
                t,
                encoder_hidden_states=context,
                controlnet_cond=image,
                conditioning_scale=unit.scale,
                return_dict=False,
            )
            down = list(d) if down is None else [a + b for a, b in zip(down, d, strict=True)]
            mid = m if mid is None else mid + m
        extra = {} if down is None else {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.sd.unet(x, t, encoder_hidden_states=context, **extra).sample

    def _timesteps(self, scheduler: Any) -> torch.Tensor:
        steps = self.gen.steps
        scheduler.set_timesteps(steps, device=self.sd.device)
        denoise = int(steps * self.gen.denoising_strength)  # DiffSynth's get_timesteps_for_img2img
        start = max(steps - denoise, 0)
        return scheduler.timesteps[start * scheduler.order :]

    def _references(self, references: Sequence[np.ndarray], noise: torch.Tensor, scheduler: Any):
        if not references or not any(isinstance(e, str) for e in self._pattern()):
            return None
        latents = self._encode_all(references)
        return ReferenceLatents(latents, noise[0], scheduler.alphas_cumprod)

    def _pattern(self) -> tuple:
        from ..attention import parse_combine_pattern

        return parse_combine_pattern(self.params.combine_pattern)

    def _render(self, frames, references, attention) -> list[np.ndarray]:
        sd, gen, p = self.sd, self.gen, self.params
        n = len(frames)
        if n == 0:
            raise ConfigError("frames", 0, "at least one frame")
        scheduler = make_scheduler(gen.scheduler, sd.scheduler_config, None)
        timesteps = self._timesteps(scheduler)
        if len(timesteps) == 0:
            return [np.array(f, copy=True) for f in frames]  # strength 0: nothing re-drawn
        smoothing = p.smoother is not DeflickerMode.NONE
        if smoothing and scheduler.config.get("prediction_type", "epsilon") != "epsilon":
            raise ConfigError("smoother", p.smoother.value, "none", "the in-loop smoother needs an epsilon model")
        init = self._encode_all(frames) if gen.denoising_strength < 1.0 else None
        shape = (sd.unet.config.in_channels, gen.height // 8, gen.width // 8)
        noise = self._noise(n, shape).to(sd.device, sd.dtype)
        if init is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            latents = scheduler.add_noise(init, noise, timesteps[:1])
        refs = self._references(references, noise, scheduler)
        both = encode_prompts(sd, [gen.negative_prompt, gen.prompt])  # diffusers' order: uncond, cond
        halves = 2 if gen.cfg_scale > 1 else 1
        context = torch.cat([both[h : h + 1].expand(n, -1, -1) for h in range(2 - halves, 2)])
        controls = self._controls(frames, halves)
        schedule = SmootherSchedule(p.smoother_interval, p.smoother_ignore_last)
        alphas = scheduler.alphas_cumprod
        generator = torch.Generator().manual_seed(gen.seed + 1)
        progress, total = self.progress or null_progress, len(timesteps)
        for i, t in enumerate(timesteps):
            check_stop(self.stop, f"at step {i + 1}")
            x_in = scheduler.scale_model_input(latents, t)
            eps = chunked_unet_call(
                self._forward,
                torch.cat([x_in] * halves),
                t,
                context,
                controls,
                num_frames=n,
                chunk_size=p.chunk_size,
                attention=attention,
                references=refs,
            )
            if halves == 2:
                uncond, cond = eps.chunk(2)
                eps = uncond + gen.cfg_scale * (cond - uncond)
            if smoothing and schedule.applies(i, total):
                eps = self._smooth(x_in, eps, alpha_prod_at(alphas, t), frames, i)
            latents = scheduler.step(eps, t, latents, generator=generator).prev_sample
            progress(i + 1, total, f"step {i + 1}/{total}")
        return [img for k in range(0, n, DECODE_CHUNK) for img in self._decode(latents[k : k + DECODE_CHUNK])]

    def _smooth(self, x_in: torch.Tensor, eps: torch.Tensor, a: torch.Tensor, frames, step: int) -> torch.Tensor:
        """The noise prediction whose predicted clean latents are the smoothed ones (in the scaled,
        variance-preserving model input ``x_in = sqrt(ᾱ) x0 + sqrt(1 − ᾱ) ε``, so any eps scheduler works)."""
        p, s = self.params, self.smoother
        a_t = a.to(x_in.device)
        x0 = ((x_in.double() - (1 - a_t).sqrt() * eps.double()) / a_t.sqrt()).to(x_in.dtype)
        smoothed = smooth_predicted(
            x0,
            decode=self._decode,
            encode=self._encode,
            guide=frames,
            mode=p.smoother,
            window=p.smoother_window,
            patch_size=s.patch_size if s.patch_size is not None else p.patch_size,
            guide_weight=s.guide_weight if s.guide_weight is not None else p.guide_weight,
            seed=self.gen.seed + step,
            chunk_size=p.chunk_size,
            stop=self.stop,
            contrast=s.contrast,
            sharpness=s.sharpness,
        )
        return noise_from_prediction(x_in, smoothed, a_t)


# --- a whole job --------------------------------------------------------------------------------


def infotext_for(gen: GenerationParams, params: StylizeParams, model_name: str) -> str:
    """A1111-style parameters text: the prompt, the negative prompt, then settings."""
    pairs = {
        "Steps": gen.steps,
        "Sampler": gen.scheduler.value,
        "CFG scale": gen.cfg_scale,
        "Seed": gen.seed,
        "Size": f"{gen.width}x{gen.height}",
        "Model": model_name,
        "Denoising strength": gen.denoising_strength,
        "Video stylisation": f'"{stylize_infotext(params)}"',
    }
    lines = [gen.prompt]
    if gen.negative_prompt:
        lines.append(f"Negative prompt: {gen.negative_prompt}")
    lines.append(", ".join(f"{k}: {v}" for k, v in pairs.items()))
    return "\n".join(lines)


def run_stylize(
    sd: SDModel,
    gen: GenerationParams,
    params: StylizeParams,
    out_dir: str | Path,
    *,
    video_path: str | Path | None = None,
    controlnets: Sequence[ControlNetUnit] = (),
    smoother: SmootherSettings | None = None,
    interp_model_dir: str | Path | None = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> StylizeResult:
    """A whole job: read the input (``video_path``, a local video or folder, or the params' own input),
    render, post-process and write into ``out_dir`` (the CLI's path: no roots)."""
    from ..stylize import read_stylize_input

    if gen.seed == -1:
        gen = gen.copy(update={"seed": random.randrange(2**32)})
    size = (gen.width, gen.height)
    references = decode_references(params, size)
    with read_stylize_input(params, size=size, video_path=video_path) as source:
        job = StylizeJob(
            params,
            out_dir=out_dir,
            source=source.frames,
            fps=source.fps,
            audio_from=source.audio_source,
            infotext=infotext_for(gen, params, sd.name),
            interp_model_dir=interp_model_dir,
            progress=progress,
            stop=stop,
            seed=gen.seed,
        )
        renderer = StylizeRenderer(
            sd, gen, params, list(controlnets), smoother or SmootherSettings(), progress=progress, stop=stop
        )
        rendered = renderer.render(source.frames, references)
        return job.finish(rendered)


def _json_value(value: Any) -> Any:
    return getattr(value, "value", str(value))


def run_stylize_config(
    config: str | Path | dict,
    *,
    output: str | Path | None = None,
    device: str | None = None,
    half: bool = False,
    vfi_dir: str | Path | None = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> tuple[StylizeResult, Path]:
    """``python -m lib_vidsd stylize CONFIG.json``: DiffSynth's config (a file or dict) → a whole job.

    Models and the input are local paths only. The frames and videos go into ``output`` (default: the
    config's ``output_path``), beside them ``config.json``: the config as given plus the settings in
    effect (``vidsd.stylize``, ``vidsd.generation`` with the seed used).
    """
    import json

    from ..stylize.diffsynth import check_local_paths, diffsynth_config
    from ..video.writer import write_text
    from .animate import load_sd

    if isinstance(config, dict):
        raw, base = dict(config), Path.cwd()
    else:
        path = Path(config)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError("config", str(path), "a readable JSON file", str(e)) from e
        base = Path.cwd()  # DiffSynth resolves relative paths from where it runs
    params, gen, extras = diffsynth_config(raw, base_dir=base)
    check_local_paths(extras)
    if gen.seed == -1:
        gen = gen.copy(update={"seed": random.randrange(2**32)})
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if half and str(dev).startswith("cuda") else torch.float32
    sd = load_sd(extras.model, device=dev, dtype=dtype)
    units = [
        ControlNetUnit(load_controlnet(p, device=dev, dtype=dtype), proc, scale)
        for p, proc, scale in zip(extras.controlnets, extras.processors, extras.controlnet_scales, strict=True)
    ]
    smoother = SmootherSettings(
        extras.smoother_patch_size, extras.smoother_guide_weight, extras.smoother_contrast, extras.smoother_sharpness
    )
    out_dir = Path(output or extras.output_path)
    result = run_stylize(
        sd,
        gen,
        params,
        out_dir,
        video_path=extras.input_path,
        controlnets=units,
        smoother=smoother,
        interp_model_dir=vfi_dir,
        progress=progress,
        stop=stop,
    )
    effective = {
        **raw,
        "vidsd": {
            "stylize": params.dict(exclude={"reference_images", "input_frames"}),
            "generation": gen.dict(),
            "controlnet_processors": extras.processors,
            "frames": len(result.frame_paths),
            "fps": result.fps,
        },
    }
    write_text(out_dir / "config.json", json.dumps(effective, indent=2, default=_json_value))
    return result, out_dir
