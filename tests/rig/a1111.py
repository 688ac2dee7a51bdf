"""Helpers around the A1111 contract stub (``tests/a1111_stub``): put it on ``sys.path``, reset its
global state between tests, a tiny ``sd_model`` over the ldm UNet, and the WebUI's UI-side steps
(script argument slices, the txt2img/img2img entry points) without gradio.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

STUB_ROOT = Path(__file__).resolve().parents[1] / "a1111_stub"
_PRISTINE_OPTIONS: dict[str, Any] = {}


def install_stub() -> None:
    """Make ``import modules`` find the stub (idempotent)."""
    if str(STUB_ROOT) not in sys.path:
        sys.path.insert(0, str(STUB_ROOT))


def sd15_alphas_cumprod() -> torch.Tensor:
    """SD1.x's noise schedule (ldm ``linear``: betas linear in sqrt from 0.00085 to 0.012), (1000,) float32."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


class _DiffusionWrapper(torch.nn.Module):
    """Stands for ldm's ``DiffusionWrapper``: ``sd_model.model.diffusion_model`` is the UNet."""

    def __init__(self, diffusion_model: torch.nn.Module):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = "crossattn"


class TinySdModel(torch.nn.Module):
    """A stand-in for A1111's loaded SD1.x model (``shared.sd_model``) around a tiny ldm UNet.

    Real parts: ``model.diffusion_model`` (the UNet the extension patches), ``alphas_cumprod``
    (SD1.x schedule), ``apply_model(x, t, cond)`` with ``cond = {"c_crossattn": [(B, T, C)], ...}``.
    Fake parts: ``get_learned_conditioning(prompts)`` gives each prompt a fixed pseudo-random
    ``(tokens, context_dim)`` embedding (seeded by the prompt's CRC32); the "VAE" maps 4 latent
    channels to RGB with a fixed 3x4 matrix, nearest-upsampled x8, through tanh (and back by
    pseudo-inverse and 8x8 average pooling).
    """

    def __init__(self, unet: torch.nn.Module, *, context_dim: int = 32, tokens: int = 8, seed: int = 0):
        super().__init__()
        self.model = _DiffusionWrapper(unet)
        self.register_buffer("alphas_cumprod", sd15_alphas_cumprod())
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("latent_to_rgb", torch.randn(3, 4, generator=generator) * 0.5)
        self.context_dim = context_dim
        self.tokens = tokens
        self.cond_stage_key = "txt"
        self.cond_stage_model = None
        self.parameterization = "eps"
        self.latent_channels = 4
        self.scale_factor = 0.18215
        self.is_sdxl = self.is_ssd = self.is_sd2 = self.is_sd3 = False
        self.is_sd1 = True
        self.sd_model_hash = "0123abcd"
        self.sd_model_checkpoint = "tiny.safetensors"
        self.sd_checkpoint_info = SimpleNamespace(
            filename="tiny.safetensors",
            name="tiny.safetensors",
            name_for_extra="tiny",
            model_name="tiny",
            title="tiny.safetensors [0123abcd45]",
            hash="0123abcd",
            shorthash="0123abcd45",
            sha256=None,
        )

    def get_learned_conditioning(self, prompts: Sequence[str]) -> torch.Tensor:
        rows = []
        for prompt in prompts:
            generator = torch.Generator().manual_seed(zlib.crc32(prompt.encode("utf-8")))
            rows.append(torch.randn(self.tokens, self.context_dim, generator=generator))
        return torch.stack(rows)

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        context = torch.cat(cond["c_crossattn"], 1)
        return self.model.diffusion_model(x_noisy, timesteps=t, context=context)

    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        up = torch.nn.functional.interpolate(z, scale_factor=8, mode="nearest")
        return torch.tanh(torch.einsum("oc,bchw->bohw", self.latent_to_rgb, up))

    def encode_first_stage(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.avg_pool2d(torch.atanh(x.clamp(-0.999, 0.999)), 8)
        return torch.einsum("co,bohw->bchw", torch.linalg.pinv(self.latent_to_rgb), pooled)

    def get_first_stage_encoding(self, encoder_posterior: torch.Tensor) -> torch.Tensor:
        return encoder_posterior

    @contextlib.contextmanager
    def ema_scope(self, context=None):
        yield


def reset_stub(outdir: str | Path) -> None:
    """Put the stub's globals back to a fresh WebUI: default settings (options added by
    ``add_option`` removed), a new job state, no callbacks, scripts, extensions, styles, cached
    conds or recorded errors, ``sd_model = None``; output folders under ``outdir``."""
    install_stub()
    from modules import errors, extensions, processing, script_callbacks, scripts, shared

    if not _PRISTINE_OPTIONS:
        _PRISTINE_OPTIONS.update(shared.opts.data_labels)
    shared.opts.data_labels.clear()
    shared.opts.data_labels.update(_PRISTINE_OPTIONS)
    shared.opts.data = {k: v.default for k, v in shared.opts.data_labels.items() if not v.do_not_save}
    outdir = Path(outdir)
    for key, folder in (
        ("outdir_txt2img_samples", "txt2img-images"),
        ("outdir_img2img_samples", "img2img-images"),
        ("outdir_txt2img_grids", "txt2img-grids"),
        ("outdir_img2img_grids", "img2img-grids"),
    ):
        shared.opts.data[key] = str(outdir / folder)

    shared.state.__dict__.clear()
    shared.state.__init__()
    shared.total_tqdm.clear()
    shared.sd_model = None
    shared.prompt_styles.styles.clear()
    processing.StableDiffusionProcessing.cached_c = [None, None]
    processing.StableDiffusionProcessing.cached_uc = [None, None]
    script_callbacks.clear_callbacks()
    errors.exception_records.clear()
    extensions.extensions.clear()
    extensions.extension_paths.clear()
    extensions.loaded_extensions.clear()
    scripts.scripts_data.clear()
    scripts.scripts_txt2img = scripts.scripts_img2img = scripts.scripts_current = None


def install_extension(path: str | Path, name: str = "vidsd"):
    """Register the folder ``path`` as an installed, enabled extension (as if it were under
    ``extensions/``); ``scripts.load_scripts()`` then executes its ``scripts/*.py``."""
    install_stub()
    from modules import extensions

    return extensions.add(extensions.Extension(name, str(path)))


def _source_file(script: Any) -> str:
    """The file a script class came from; loaded extension scripts are not in ``sys.modules`` (as in
    the WebUI), so their entry in ``scripts.scripts_data`` says."""
    from modules import scripts

    for data in scripts.scripts_data:
        if data.script_class is type(script):
            return data.path
    return inspect.getfile(type(script))


def make_runner(
    script_objects: Iterable[Any],
    *,
    is_img2img: bool = False,
    args: dict[Any, Sequence[Any]] | None = None,
    selected: Any = None,
):
    """A ``ScriptRunner`` holding ``script_objects`` (``Script`` instances) and the matching
    ``script_args`` tuple, laid out as ``ScriptRunner.initialize_scripts`` + ``setup_ui`` would:
    ``script_args[0]`` is the dropdown index (0 = None, i = ``selectable_scripts[i-1]``), then each
    AlwaysVisible script's values, then each selectable script's. ``args`` maps a script to the
    values its ``ui()`` components would hold (``ui()`` itself is not called).
    Returns ``(runner, script_args)``."""
    install_stub()
    from modules import scripts

    args = args or {}
    runner = scripts.ScriptRunner()
    for script in script_objects:
        script.filename = _source_file(script)
        script.is_txt2img = not is_img2img
        script.is_img2img = is_img2img
        script.tabname = "img2img" if is_img2img else "txt2img"
        visibility = script.show(is_img2img)
        if visibility == scripts.AlwaysVisible:
            script.alwayson = True
            runner.scripts.append(script)
            runner.alwayson_scripts.append(script)
        elif visibility:
            runner.scripts.append(script)
            runner.selectable_scripts.append(script)

    values: list[Any] = [0]
    for script in runner.alwayson_scripts + runner.selectable_scripts:
        script.name = script.title().lower()
        script.args_from = len(values)
        values.extend(args.get(script, ()))
        script.args_to = len(values)
    runner.title_map = {s.title().lower(): s for s in runner.scripts}
    runner.titles = [s.title() for s in runner.selectable_scripts]
    if selected is not None:
        values[0] = runner.selectable_scripts.index(selected) + 1
    return runner, tuple(values)


def _run_job(tab: str, runner, script_args: Sequence[Any], kwargs: dict[str, Any]):
    """What a click on Generate does, without gradio: build ``p`` for ``tab`` (output folders
    from the settings unless given), attach the scripts, ``state.begin``, the selected script's
    ``run`` or else ``process_images``, ``state.end``. Exceptions propagate (the WebUI shows them
    as HTML); either way the job flags are cleared afterwards, as the WebUI's call wrapper does."""
    from modules import processing, shared

    opts, state = shared.opts, shared.state
    kwargs.setdefault("outpath_samples", opts.outdir_samples or opts.data[f"outdir_{tab}_samples"])
    kwargs.setdefault("outpath_grids", opts.outdir_grids or opts.data[f"outdir_{tab}_grids"])
    cls = (
        processing.StableDiffusionProcessingImg2Img if tab == "img2img" else processing.StableDiffusionProcessingTxt2Img
    )
    p = cls(sd_model=shared.sd_model, **kwargs)
    p.scripts = runner
    p.script_args = tuple(script_args)
    state.begin(job=f"task({tab})")
    try:
        with contextlib.closing(p):
            processed = runner.run(p, *p.script_args) or processing.process_images(p)
        shared.total_tqdm.clear()
        state.end()
        return p, processed
    finally:
        state.skipped = state.interrupted = state.stopping_generation = False
        state.job, state.job_count = "", 0


def run_txt2img(runner, script_args: Sequence[Any], **kwargs: Any):
    """Run a txt2img job (``kwargs`` are ``StableDiffusionProcessingTxt2Img`` fields) with
    ``runner`` and ``script_args`` (see :func:`make_runner`); returns ``(p, processed)``."""
    return _run_job("txt2img", runner, script_args, kwargs)


def run_img2img(runner, script_args: Sequence[Any], **kwargs: Any):
    """As :func:`run_txt2img` for ``StableDiffusionProcessingImg2Img`` (give ``init_images``)."""
    return _run_job("img2img", runner, script_args, kwargs)


def tiny_sd_model(unet: torch.nn.Module | None = None) -> TinySdModel:
    """``TinySdModel`` over ``unet`` (used as given; default: a fresh ``tests.rig.ldm.build_ldm_unet()``)."""
    if unet is None:
        from .ldm import build_ldm_unet

        unet = build_ldm_unet()
    return TinySdModel(unet).eval()
