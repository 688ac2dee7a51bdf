"""Steps animation in the WebUI: record each sampler step, write one movie per image.

The sampler's per-step callback (``callback_state``, called by every sampler A1111 1.10 ships,
k-diffusion and timestep samplers alike) is wrapped on the sampler instance in
``process_before_every_sampling``; the instance lives for one sampling pass, so nothing needs
restoring. Movies are made in ``postprocess_image`` (``p.batch_index`` says which image), before
A1111 writes the image, so the image's infotext can name its movie.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lib_vidsd.config import StepsAnimateDiffView, StepsAnimationParams, StepsDecode
from lib_vidsd.errors import ConfigError
from lib_vidsd.steps import StepRecorder, latents_to_rgb, render_steps

from . import binding, models

log = logging.getLogger("vidsd.a1111.steps")

MOVIE_KEY = "Steps animation movie"
ERROR_KEY = "Steps animation error"
#: k-diffusion samplers whose number of callbacks is set by an error tolerance, not by the steps
ADAPTIVE_SAMPLERS = ("sample_dpm_adaptive",)
#: A1111's preview decoders: (approximation index, folders below models_path, file per model kind)
PREVIEW_DECODERS = {
    StepsDecode.APPROX_NN: (1, ("VAE-approx",), {"sd": "model.pt", "sdxl": "vaeapprox-sdxl.pt"}),
    StepsDecode.TAESD: (3, ("VAE-taesd",), {"sd": "taesd_decoder.pth", "sdxl": "taesdxl_decoder.pth"}),
}


def preview_decoder_file(mode: StepsDecode, is_sdxl: bool) -> Path | None:
    """The file A1111's preview decoder would load, if it is on disk (A1111 would otherwise try
    to download it; we refuse instead)."""
    from modules import paths

    _index, subdirs, names = PREVIEW_DECODERS[mode]
    name = names["sdxl" if is_sdxl else "sd"]
    roots = [Path(paths.models_path)] + [Path(getattr(paths, "script_path", paths.models_path)) / "models"]
    for root in roots:
        for sub in subdirs:
            if (root / sub / name).is_file():
                return root / sub / name
    return None


def check_params(params: StepsAnimationParams, *, is_sdxl: bool, steps: int | None = None) -> None:
    """What can be checked before the generation: decoder files, interpolation weights, and with
    the request's ``steps`` the skipped steps and the movie's frame rate."""
    from lib_vidsd.steps.movie import movie_plan

    if isinstance(steps, int) and steps > 0:
        if params.skip_steps >= steps:
            raise ConfigError("skip_steps", params.skip_steps, f"0..{steps - 1} (fewer than the {steps} steps)")
        if params.create_movie:
            movie_plan(steps - params.skip_steps, params)
    elif params.create_movie and params.interpolation.value != "none":
        movie_plan(2, params)  # the frame-rate limit of the codec
    if params.decode in PREVIEW_DECODERS and preview_decoder_file(params.decode, is_sdxl) is None:
        _i, subdirs, names = PREVIEW_DECODERS[params.decode]
        name = names["sdxl" if is_sdxl else "sd"]
        raise ConfigError(
            "decode", params.decode.value, f"full or fast ({params.decode.value} needs models/{subdirs[0]}/{name})"
        )
    if params.create_movie:
        models.load_vfi(params.interpolation.value, params.interp_model)


@dataclass
class StepsJob:
    params: StepsAnimationParams
    is_img2img: bool
    recorder: StepRecorder = field(default_factory=StepRecorder)
    passes_this_batch: int = 0
    stopped_early: bool = False  # an adaptive sampler called back fewer times than its steps
    movies: list[Path] = field(default_factory=list)
    movie_infotexts: list[str] = field(default_factory=list)
    error: str = ""
    scratch: Any = None  # a temporary save location when the run saves no images (API save_images false)
    pending_adaptive: tuple[int, int] | None = None  # (callbacks before, steps asked) of an adaptive pass

    @classmethod
    def start(cls, p, params: StepsAnimationParams, is_img2img: bool) -> StepsJob:
        from modules import shared

        check_params(params, is_sdxl=bool(getattr(shared.sd_model, "is_sdxl", False)))
        p.extra_generation_params[binding.STEPS.key] = binding.STEPS.infotext(params, is_img2img=is_img2img)
        return cls(params, is_img2img, StepRecorder(capture=params.capture.value))

    def new_batch(self) -> None:
        self.recorder.clear()
        self.passes_this_batch = 0
        self.stopped_early = False

    def before_sampling(self, p) -> None:
        """Wrap this pass's sampler callback (the second pass is hires fix's)."""
        self.after_sampling()
        first = self.passes_this_batch == 0
        self.passes_this_batch += 1
        if not first:
            if not self.params.hires_pass:
                return
            self.recorder.next_pass()
        sampler = getattr(p, "sampler", None)
        if sampler is None or not hasattr(sampler, "callback_state"):
            log.warning("steps animation: this sampler has no per-step callback; nothing is recorded")
            return
        original = sampler.callback_state
        before = self.recorder.callbacks
        adaptive = getattr(sampler, "funcname", "") in ADAPTIVE_SAMPLERS
        steps = int(getattr(p, "steps", 0) or 0)

        def callback_state(d):
            self.recorder.on_callback(d)
            return original(d)

        sampler.callback_state = callback_state
        if adaptive:
            self.pending_adaptive = (before, steps)

    def after_sampling(self) -> None:
        """Note whether an adaptive sampler ended before giving as many steps as were asked."""
        if self.pending_adaptive is not None:
            before, steps = self.pending_adaptive
            self.stopped_early |= self.recorder.callbacks - before < steps
            self.pending_adaptive = None

    def incomplete(self) -> bool:
        """Interrupted or skipped, or an adaptive sampler (DPM adaptive) that gave fewer steps than
        asked. Fixed-step samplers call back their own number of times (DDIM and PLMS one less
        than the steps, DPM fast once per order group): those runs are complete."""
        from modules import shared

        self.after_sampling()
        return bool(shared.state.interrupted or shared.state.skipped or self.stopped_early)

    def movie_for(self, p, index: int, size: tuple[int, int], animatediff_frames: int = 0) -> Path | None:
        """Write the movie of batch item ``index`` (or of the whole animation, ``animatediff_frames``
        long) at the final image's ``size``; returns its path (the frames folder without a movie)."""
        params = self.params
        if not self.recorder.callbacks:
            return None
        if self.incomplete() and not params.run_incomplete:
            log.info("steps animation: the run is incomplete and 'run on incomplete' is off; no movie")
            return None
        latents = self._sequence(index, animatediff_frames)
        if animatediff_frames and self.params.animatediff_view is StepsAnimateDiffView.GRID:
            cols, rows = _grid_shape(animatediff_frames)
            size = (size[0] * cols, size[1] * rows)
        seed = p.seeds[index] if index < len(p.seeds) else p.seed
        root = self._root(p)
        stem = f"{_next_number(root, params):05}-{seed}"
        text = _infotext(p, index)
        result = render_steps(
            latents,
            self._decoder(p),
            params,
            root=root,
            stem=stem,
            size=size,
            comment=text,
            prompt=p.prompts[index] if index < len(p.prompts) else p.prompt,
            interp_model=models.load_vfi(params.interpolation.value, params.interp_model),
        )
        path = result.movie or result.frames_dir
        if result.movie is not None:
            self.movies.append(result.movie)
            self.movie_infotexts.append(text)
        return path

    def _root(self, p) -> Path:
        """The save location: the run's image folder, or a temporary one when nothing is saved
        (the API's ``save_images: false``), removed by :meth:`cleanup`."""
        if not getattr(p, "do_not_save_samples", False):
            return Path(p.outpath_samples)
        if self.scratch is None:
            import tempfile

            self.scratch = tempfile.TemporaryDirectory(prefix="vidsd-steps-")
        return Path(self.scratch.name)

    def saves(self, p) -> bool:
        return not getattr(p, "do_not_save_samples", False)

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None

    def _sequence(self, index: int, animatediff_frames: int) -> list[torch.Tensor]:
        if not animatediff_frames:
            return self.recorder.sequence(index)
        seq = [lat[:animatediff_frames] for lat in self.recorder.latents]
        if self.params.animatediff_view is StepsAnimateDiffView.FRAME0:
            return [lat[0] for lat in seq]
        return [_grid(lat) for lat in seq]

    def _decoder(self, p):
        mode = self.params.decode
        model = p.sd_model
        if mode is StepsDecode.FAST:
            family = "sdxl" if getattr(model, "is_sdxl", False) else "sd15"
            return lambda latents: latents_to_rgb(latents, family)
        from modules import sd_samplers_common

        index = 0 if mode is StepsDecode.FULL else PREVIEW_DECODERS[mode][0]

        def decode(latents: torch.Tensor) -> torch.Tensor:
            images = sd_samplers_common.samples_to_images_tensor(latents, index, model)
            return ((images.float() + 1) / 2).clamp(0, 1)

        return decode


def _next_number(root: Path, params: StepsAnimationParams) -> int:
    """A1111's next file number, counted over both the movie folder and the frames folder (runs
    that keep only frames must not reuse a number)."""
    from modules import images

    numbers = []
    for sub in (params.movie_folder, params.frames_folder):
        folder = root / sub
        folder.mkdir(parents=True, exist_ok=True)
        numbers.append(images.get_next_sequence_number(str(folder), ""))
    return max(numbers)


def _grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of the grid of ``count`` frames: as square as possible, filled row by row."""
    import math

    cols = math.ceil(math.sqrt(count))
    return cols, math.ceil(count / cols)


def _grid(latents: torch.Tensor) -> torch.Tensor:
    """``[F, 4, h, w]`` → one ``[4, rows·h, cols·w]`` latent with the frames tiled row by row."""
    count, ch, h, w = latents.shape
    cols, rows = _grid_shape(count)
    canvas = latents.new_zeros(ch, rows * h, cols * w)
    for k in range(count):
        r, c = divmod(k, cols)
        canvas[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = latents[k]
    return canvas


def _infotext(p, index: int) -> str:
    from modules import processing

    try:
        return processing.create_infotext(
            p, p.prompts, p.seeds, p.subseeds, index=index, all_negative_prompts=p.negative_prompts
        )
    except Exception as e:  # the movie's description is a courtesy; never lose the movie over it
        log.debug("no infotext for the movie: %s", e)
        return str(getattr(p, "prompt", ""))


def movie_relative(p, path: Path) -> str:
    try:
        return path.relative_to(Path(p.outpath_samples).resolve()).as_posix()
    except ValueError:
        return path.name


def animatediff_frames(p) -> int:
    """The AnimateDiff job's frame count when one runs on ``p`` (its batch is the animation)."""
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", ()):
        jobs: dict[int, Any] | None = getattr(script, "jobs", None)
        if script.title() == "AnimateDiff" and jobs:
            job = jobs.get(id(p))
            if job is not None and getattr(job, "error", None) is None:
                return int(job.frames)
    return 0
