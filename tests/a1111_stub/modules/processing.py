"""Stands in for ``modules/processing.py``: the processing objects (``p``) and ``process_images``.

Order of events, as in the WebUI (the test ``test_process_images_calls_hooks_in_a1111_order``
pins it): assigning both ``p.scripts`` and ``p.script_args`` runs the scripts' ``setup``.
``process_images``: ``before_process``, then (inside a ``try`` whose ``finally`` puts back the
``override_settings``) prompts and seeds, ``process``, ``p.init``; for each of the ``n_iter``
batches unless interrupted: ``before_process_batch``, ``after_extra_networks_activate``,
``process_batch``, conds, ``p.sample`` (which calls ``process_before_every_sampling``),
``post_sample``, decoding, ``state.nextjob()``, ``postprocess_batch``, ``postprocess_batch_list``,
and for each image ``postprocess_image``, ``postprocess_maskoverlay``,
``postprocess_image_after_composite`` and saving. ``postprocess`` comes last and only when
nothing raised; an exception from sampling propagates.

Per batch, as in the WebUI: ``p.rng`` (an ``rng.ImageRNG`` over the batch's seeds) is made before
``before_process_batch`` and gives the sampler its starting noise; extra-network tags are taken out
of ``p.prompts``; ``setup_conds`` fills ``p.c`` (a ``prompt_parser.MulticondLearnedConditioning``)
and ``p.uc`` through ``get_conds_with_caching``, whose caches ``StableDiffusionProcessing.cached_c``
/ ``cached_uc`` are shared by every ``p`` and survive the job (``persistent_cond_cache``), so the
next job with the same prompts gets the very same objects.

Not modelled: styles (``shared.prompt_styles`` holds none), activating extra networks, hires fix,
face restoration, colour correction, grids, variation seeds, prompt editing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from modules import devices, extra_networks, images, infotext_utils, prompt_parser, rng, scripts, sd_samplers, shared
from PIL import Image, ImageOps

opt_C = 4  # latent channels
opt_f = 8  # latent downscale factor


def _hook(p, name, *args, **kwargs):
    if p.scripts is not None:
        getattr(p.scripts, name)(p, *args, **kwargs)


class _ScriptsSlot:
    """``p.scripts`` / ``p.script_args``: kept in ``<name>_value``; the scripts' ``setup`` runs
    once, when both have been given."""

    def __set_name__(self, owner, name):
        self.attr = f"{name}_value"

    def __get__(self, p, owner=None):
        return self if p is None else getattr(p, self.attr)

    def __set__(self, p, value):
        setattr(p, self.attr, value)
        if p.scripts_value and p.script_args_value and not p.scripts_setup_complete:
            p.setup_scripts()


class _SharedModel:
    """``p.sd_model`` is always ``shared.sd_model``; assigning to it is ignored (so in the WebUI)."""

    def __get__(self, p, owner=None):
        return shared.sd_model

    def __set__(self, p, value):
        pass


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list[str] = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict[str, Any] = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    ddim_discretize: str = None
    s_min_uncond: float = None
    s_churn: float = None
    s_tmax: float = None
    s_tmin: float = None
    s_noise: float = None
    override_settings: dict[str, Any] = None
    override_settings_restore_afterwards: bool = True
    sampler_index: int = None
    refiner_checkpoint: str = None
    refiner_switch_at: float = None
    token_merging_ratio = 0
    token_merging_ratio_hr = 0
    disable_extra_networks: bool = False
    firstpass_image: Image = None

    scripts_value: scripts.ScriptRunner = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)

    cached_uc = [None, None]
    cached_c = [None, None]

    comments: dict = None
    sampler: Any = field(default=None, init=False)
    c: Any = field(default=None, init=False)
    uc: Any = field(default=None, init=False)
    rng: Any = field(default=None, init=False)
    step_multiplier: int = field(default=1, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    sd_model_name: str = field(default=None, init=False)
    sd_model_hash: str = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    scripts = _ScriptsSlot()
    script_args = _ScriptsSlot()

    def __post_init__(self):
        self.comments = {}
        self.styles = self.styles or []
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        if self.script_args_value is None:
            self.script_args_value = {}  # what the WebUI leaves there until scripts are attached
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c

    def setup_scripts(self):
        """Let the scripts' ``setup`` see ``p``; happens once per ``p``."""
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def setup_prompts(self):
        """Fill ``all_prompts`` / ``all_negative_prompts``, one per image, from the given prompts."""
        count = self.batch_size * self.n_iter
        for name in ("prompt", "negative_prompt"):
            if isinstance(getattr(self, name), list):
                count = len(getattr(self, name))
        self.all_prompts, self.all_negative_prompts = (
            v if isinstance(v, list) else [v] * count for v in (self.prompt, self.negative_prompt)
        )
        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError("prompt and negative prompt lists differ in length")
        styles = shared.prompt_styles
        self.all_prompts = [styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [
            styles.apply_negative_styles_to_prompt(x, self.styles) for x in self.all_negative_prompts
        ]
        self.main_prompt, self.main_negative_prompt = self.all_prompts[0], self.all_negative_prompts[0]

    def cached_params(self, required_prompts, steps, extra_network_data, hires_steps=None, use_old_scheduling=False):
        """What must be equal for a cached cond to be reused (the WebUI's list, less the settings the
        stub does not have)."""
        opts = shared.opts
        return (
            required_prompts,
            steps,
            hires_steps,
            use_old_scheduling,
            opts.CLIP_stop_at_last_layers,
            shared.sd_model.sd_checkpoint_info,
            extra_network_data,
            self.width,
            self.height,
        )

    def get_conds_with_caching(self, function, required_prompts, steps, caches, extra_network_data, hires_steps=None):
        """``function(shared.sd_model, required_prompts, steps, ...)``, or the object a cache in ``caches``
        (``[params, result]`` pairs) holds for the same parameters; the result goes into ``caches[0]``."""
        use_old = shared.opts.use_old_scheduling
        params = self.cached_params(required_prompts, steps, extra_network_data, hires_steps, use_old)
        for cache in caches:
            if cache[0] is not None and params == cache[0]:
                return cache[1]
        cache = caches[0]
        with devices.autocast():
            cache[1] = function(shared.sd_model, required_prompts, steps, hires_steps, use_old)
        cache[0] = params
        return cache[1]

    def setup_conds(self):
        prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
        negative_prompts = prompt_parser.SdConditioning(
            self.negative_prompts, width=self.width, height=self.height, is_negative_prompt=True
        )
        total_steps = self.steps  # the stub's sampler takes one model call per step
        self.step_multiplier = total_steps // self.steps
        self.firstpass_steps = total_steps
        self.uc = self.get_conds_with_caching(
            prompt_parser.get_learned_conditioning,
            negative_prompts,
            total_steps,
            [self.cached_uc],
            self.extra_network_data,
        )
        self.c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning,
            prompts,
            total_steps,
            [self.cached_c],
            self.extra_network_data,
        )

    def parse_extra_network_prompts(self):
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def txt2img_image_conditioning(self, x, width=None, height=None):
        return x.new_zeros(x.shape[0], 5, 1, 1)  # what a non-inpainting model gets

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def save_samples(self) -> bool:
        """Whether finished images are written (not when the job was interrupted or skipped)."""
        cut_short = shared.state.interrupted or shared.state.skipped
        return shared.opts.samples_save and not self.do_not_save_samples and not cut_short

    def close(self):
        self.sampler = self.c = self.uc = None
        if not shared.opts.persistent_cond_cache:
            StableDiffusionProcessing.cached_c = [None, None]
            StableDiffusionProcessing.cached_uc = [None, None]

    def comment(self, text):
        """Add a line to ``Processed.comments`` (each text once)."""
        self.comments[text] = 1


StableDiffusionProcessing.sd_model = _SharedModel()  # after @dataclass, so the field default stays None


_FROM_P = "width height steps cfg_scale sampler_name batch_size denoising_strength extra_generation_params".split()


def _first(value):
    return value[0] if isinstance(value, list) else value


class Processed:
    def __init__(
        self,
        p: StableDiffusionProcessing,
        images_list,
        seed=-1,
        info="",
        subseed=None,
        all_prompts=None,
        all_negative_prompts=None,
        all_seeds=None,
        all_subseeds=None,
        index_of_first_image=0,
        infotexts=None,
        comments="",
    ):
        for name in _FROM_P:
            setattr(self, name, getattr(p, name, None))
        self.images = images_list
        self.prompt, self.negative_prompt = _first(p.prompt), _first(p.negative_prompt)
        self.seed = -1 if seed is None else int(_first(seed))
        self.subseed = -1 if subseed is None else int(_first(subseed))
        self.info = info
        self.infotexts = infotexts or [info] * len(images_list)
        given = {
            "all_prompts": (all_prompts, self.prompt),
            "all_negative_prompts": (all_negative_prompts, self.negative_prompt),
            "all_seeds": (all_seeds, self.seed),
            "all_subseeds": (all_subseeds, self.subseed),
        }
        for name, (value, single) in given.items():  # given, else p's, else just the first image's
            setattr(self, name, value or getattr(p, name) or [single])
        self.index_of_first_image = index_of_first_image
        self.comments = "".join(f"{text}\n" for text in p.comments)


def create_random_tensors(
    shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0, p=None
):
    """A stack of one ``randn(shape)`` per seed (see ``rng.ImageRNG``)."""
    g = rng.ImageRNG(shape, seeds, subseeds=subseeds, subseed_strength=subseed_strength,
                     seed_resize_from_h=seed_resize_from_h, seed_resize_from_w=seed_resize_from_w)  # fmt: skip
    return g.next()


def get_fixed_seed(seed):
    """``seed`` as an int (a list is left alone); -1, None, "" or an unparsable string become a random seed."""
    if isinstance(seed, list):
        return seed
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        seed = -1
    return random.randrange(4294967294) if seed == -1 else seed


def fix_seed(p):
    p.seed, p.subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)


def program_version():
    return "v1.10.1"


def create_infotext(
    p,
    all_prompts,
    all_seeds,
    all_subseeds,
    comments=None,
    iteration=0,
    position_in_batch=0,
    use_main_prompt=False,
    index=None,
    all_negative_prompts=None,
):
    """The text stored with image ``index``: its prompt, a ``Negative prompt:`` line if there is
    one, then one line of ``Key: value`` pairs (values quoted when needed, ``None`` left out;
    ``extra_generation_params`` are added in order, a list there gives one value per image)."""
    opts = shared.opts
    if index is None:
        index = 0 if use_main_prompt else iteration * p.batch_size + position_in_batch
    negatives = p.all_negative_prompts if all_negative_prompts is None else all_negative_prompts
    prompt = p.main_prompt if use_main_prompt else all_prompts[index]
    negative = p.main_negative_prompt if use_main_prompt else negatives[index]
    clip_skip = opts.CLIP_stop_at_last_layers
    pairs = dict(
        [
            ("Steps", p.steps),
            ("Sampler", p.sampler_name),
            ("Schedule type", p.scheduler),
            ("CFG scale", p.cfg_scale),
            ("Seed", all_seeds[index]),
            ("Size", f"{p.width}x{p.height}"),
            ("Model hash", p.sd_model_hash if opts.add_model_hash_to_info else None),
            ("Model", p.sd_model_name if opts.add_model_name_to_info else None),
            ("Clip skip", clip_skip if clip_skip > 1 else None),
        ]
    )
    for key, value in p.extra_generation_params.items():
        pairs[key] = value[index] if isinstance(value, list) else value
    pairs["Version"] = program_version() if opts.add_version_to_infotext else None
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {infotext_utils.quote(v)}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines).strip()


def process_images(p: StableDiffusionProcessing) -> Processed:
    _hook(p, "before_process")
    opts = shared.opts
    previous = {key: opts.data[key] for key in p.override_settings if key in opts.data}
    try:
        for key, value in p.override_settings.items():
            opts.set(key, value, is_api=True, run_callbacks=False)
        return process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for key, value in previous.items():
                setattr(opts, key, value)


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    state, opts = shared.state, shared.opts
    model = shared.sd_model
    p.sd_model_name = model.sd_checkpoint_info.name_for_extra
    p.sd_model_hash = model.sd_model_hash
    seed, subseed = get_fixed_seed(p.seed), get_fixed_seed(p.subseed)
    p.setup_prompts()
    count = len(p.all_prompts)
    per_image = 1 if p.subseed_strength == 0 else 0  # with a variation strength every image keeps the seed
    p.all_seeds = seed if isinstance(seed, list) else [seed + i * per_image for i in range(count)]
    p.all_subseeds = subseed if isinstance(subseed, list) else [subseed + i for i in range(count)]
    _hook(p, "process")

    output_images, infotexts = [], []
    with torch.no_grad():
        p.init(p.all_prompts, p.all_seeds, p.all_subseeds)
        if state.job_count == -1:  # a fresh job: one unit of progress per batch
            state.job_count = p.n_iter
        for n in range(p.n_iter):
            p.iteration = n
            state.skipped = False
            if state.interrupted or state.stopping_generation:
                break
            rows = slice(n * p.batch_size, (n + 1) * p.batch_size)
            p.prompts, p.negative_prompts = p.all_prompts[rows], p.all_negative_prompts[rows]
            p.seeds, p.subseeds = p.all_seeds[rows], p.all_subseeds[rows]
            channels = getattr(shared.sd_model, "latent_channels", opt_C)
            p.rng = rng.ImageRNG(
                (channels, p.height // opt_f, p.width // opt_f), p.seeds, subseeds=p.subseeds,
                subseed_strength=p.subseed_strength, seed_resize_from_h=p.seed_resize_from_h,
                seed_resize_from_w=p.seed_resize_from_w,
            )  # fmt: skip
            batch = {"batch_number": n, "prompts": p.prompts, "seeds": p.seeds, "subseeds": p.subseeds}
            _hook(p, "before_process_batch", **batch)
            if not p.prompts:
                break
            p.parse_extra_network_prompts()
            if not p.disable_extra_networks:
                _hook(p, "after_extra_networks_activate", **batch, extra_network_data=p.extra_network_data)
            _hook(p, "process_batch", **batch)
            p.setup_conds()

            latents = p.sample(p.c, p.uc, p.seeds, p.subseeds, p.subseed_strength, p.prompts)
            sampled = scripts.PostSampleArgs(latents)
            _hook(p, "post_sample", sampled)
            decoded = p.sd_model.decode_first_stage(sampled.samples).float().cpu()
            decoded = ((decoded + 1) / 2).clamp(0, 1)
            state.nextjob()

            _hook(p, "postprocess_batch", decoded, batch_number=n)
            as_list = scripts.PostprocessBatchListArgs(list(decoded))
            _hook(p, "postprocess_batch_list", as_list, batch_number=n)

            write = p.save_samples()
            for i, pixels in enumerate(as_list.images):
                p.batch_index = i
                array = (pixels.movedim(0, -1).numpy() * 255).astype(np.uint8)
                pp = scripts.PostprocessImageArgs(Image.fromarray(array))
                _hook(p, "postprocess_image", pp)
                overlays = getattr(p, "overlay_images", None)
                overlay = overlays[i] if overlays and i < len(overlays) else None
                _hook(p, "postprocess_maskoverlay", scripts.PostProcessMaskOverlayArgs(i, None, overlay))
                if overlay is not None:  # apply_overlay: the kept area of the init image over the result
                    pp.image = Image.alpha_composite(pp.image.convert("RGBA"), overlay).convert("RGB")
                _hook(p, "postprocess_image_after_composite", pp)
                text = create_infotext(
                    p, p.prompts, p.seeds, p.subseeds, index=i, all_negative_prompts=p.negative_prompts
                )
                if write:
                    images.save_image(
                        pp.image, p.outpath_samples, "", p.seeds[i], p.prompts[i], opts.samples_format, info=text, p=p
                    )
                if opts.enable_pnginfo:
                    pp.image.info["parameters"] = text
                infotexts.append(text)
                output_images.append(pp.image)

    if not infotexts:
        infotexts.append(create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds))
    result = Processed(
        p, output_images, seed=p.all_seeds[0], info=infotexts[0], subseed=p.all_subseeds[0], infotexts=infotexts
    )
    _hook(p, "postprocess", result)
    return result


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    denoising_strength: float = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str = None
    hr_sampler_name: str = None
    hr_scheduler: str = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    force_task_id: str = None

    def init(self, all_prompts, all_seeds, all_subseeds):
        if self.enable_hr:
            raise NotImplementedError("a1111 stub: no hires fix")

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        noise = self.rng.next()
        c, uc = conditioning, unconditional_conditioning
        _hook(self, "process_before_every_sampling", x=noise, noise=noise, c=c, uc=uc)
        return self.sampler.sample(self, noise, c, uc, image_conditioning=self.txt2img_image_conditioning(noise))


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: Image = None
    force_task_id: str = None

    image_mask: Any = field(default=None, init=False)
    image_conditioning: torch.Tensor = field(default=None, init=False)
    init_latent: torch.Tensor = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        self.image_mask, self.mask = self.mask, None
        if self.initial_noise_multiplier is None:
            self.initial_noise_multiplier = 1.0

    def init(self, all_prompts, all_seeds, all_subseeds):
        """Encode ``init_images``. One image serves the whole batch; several (at most ``batch_size``)
        make the batch, ``batch_size`` shrinking to their number; more is an error."""
        mask = None
        if self.image_mask is not None:  # whole-picture inpainting ("original" fill, no blur)
            mask = self.image_mask.convert("L").resize((self.width, self.height), Image.LANCZOS)
            if self.mask_round:
                mask = mask.point(lambda v: 255 if v > 127 else 0)
            self.mask_for_overlay = mask
        self.extra_generation_params["Denoising strength"] = self.denoising_strength
        self.sampler = sd_samplers.create_sampler(self.sampler_name, self.sd_model)
        size = (self.width, self.height)
        pictures = [img.convert("RGB").resize(size, Image.LANCZOS) for img in self.init_images]
        if len(pictures) > self.batch_size and len(pictures) != 1:
            raise RuntimeError(f"{len(pictures)} init images for a batch of {self.batch_size}")
        if len(pictures) > 1:
            self.batch_size = len(pictures)
        stacked = np.stack([np.asarray(img, dtype=np.float32) / 255 for img in pictures])
        pixels = torch.from_numpy(stacked).permute(0, 3, 1, 2) * 2 - 1
        pixels = pixels.expand(self.batch_size, -1, -1, -1)
        model = self.sd_model
        self.init_latent = model.get_first_stage_encoding(model.encode_first_stage(pixels))
        self.image_conditioning = self.img2img_image_conditioning(pixels, self.init_latent)
        if mask is not None:
            # the overlay: the init image where the mask keeps it, composited over each result
            self.overlay_images = []
            for img in pictures:
                masked = Image.new("RGBa", img.size)
                masked.paste(img.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask))
                self.overlay_images.append(masked.convert("RGBA"))
            latent_size = (self.init_latent.shape[3], self.init_latent.shape[2])
            redraw = np.around(np.asarray(mask.resize(latent_size), dtype=np.float32) / 255)
            self.nmask = torch.from_numpy(redraw)[None, None].to(self.init_latent)
            self.mask = 1 - self.nmask

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        noise = self.rng.next()
        if self.initial_noise_multiplier != 1.0:
            self.extra_generation_params["Noise multiplier"] = self.initial_noise_multiplier
            noise = noise * self.initial_noise_multiplier
        c, uc = conditioning, unconditional_conditioning
        _hook(self, "process_before_every_sampling", x=self.init_latent, noise=noise, c=c, uc=uc)
        samples = self.sampler.sample_img2img(
            self, self.init_latent, noise, c, uc, image_conditioning=self.image_conditioning
        )
        if self.mask is not None:  # the kept area comes back from the init latent
            samples = samples * self.nmask + self.init_latent * self.mask
        return samples
