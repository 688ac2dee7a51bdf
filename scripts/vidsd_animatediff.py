"""AnimateDiff in txt2img and img2img: an AlwaysVisible accordion, the job hooks, callbacks."""

import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import script_callbacks, scripts, shared  # noqa: E402

from lib_vidsd.errors import VidsdError  # noqa: E402
from lib_vidsd.patching import restore_all  # noqa: E402
from vidsd_a1111 import api, binding, output, settings, ui, xyz  # noqa: E402
from vidsd_a1111.job import AnimateDiffJob, unet_of  # noqa: E402

log = logging.getLogger("vidsd.a1111.animatediff")


class AnimateDiffScript(scripts.Script):
    def __init__(self):
        super().__init__()
        self.jobs: dict[int, AnimateDiffJob] = {}  # id(p) → its job, while the job runs

    def title(self):
        return "AnimateDiff"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return ui.build(self, is_img2img)

    def before_process(self, p, *args):
        self.jobs.pop(id(p), None)
        try:
            params = binding.parse_args(_with_default_formats(args))
        except VidsdError as e:
            if _asks_enabled(args):  # bad values matter only when AnimateDiff is switched on
                self._fail(p, e)
            return
        if not params.enable:
            return
        try:
            self.jobs[id(p)] = AnimateDiffJob.start(p, params, self.is_img2img)
        except VidsdError as e:
            self._fail(p, e)
            return
        if not shared.opts.data.get("vidsd_animatediff_save_frames", True):
            p.do_not_save_samples = True

    def _fail(self, p, error):
        job = AnimateDiffJob(binding.parse_args(({"enable": True},)), 1, self.is_img2img, error=error)
        self.jobs[id(p)] = job

    def process(self, p, *args):
        job = self.jobs.get(id(p))
        if job is None:
            return
        if job.error is not None:
            job._fail_on_first_call(p, unet_of(p))
        else:
            key = id(p)
            job.attach(p, on_close=lambda: self.jobs.pop(key, None))

    def before_process_batch(self, p, *args, **kwargs):
        job = self.jobs.get(id(p))
        if job is not None and job.error is None:
            job.blend_init_latent(p)

    def process_before_every_sampling(self, p, *args, **kwargs):
        job = self.jobs.get(id(p))
        if job is not None and job.error is None:
            job.before_sampling(p, kwargs.get("noise"))

    def postprocess(self, p, processed, *args):
        job = self.jobs.pop(id(p), None)
        if job is None:
            return
        job.finish()
        if job.error is not None:
            return
        state = shared.state
        if (state.interrupted or state.skipped) and not shared.opts.data.get("save_incomplete_images", False):
            return  # the frames still show in the gallery; the animation is written only if asked
        start = processed.index_of_first_image
        frames_all = processed.images[start:]
        videos, shown, gif_infos, finished = [], [], [], []
        for k in range(0, len(frames_all) - job.frames + 1, job.frames):
            seed = processed.all_seeds[k] if k < len(processed.all_seeds) else processed.seed
            info = processed.infotexts[start + k] if len(processed.infotexts) > start + k else ""
            try:
                frames = output.deflicker_frames(job.params, frames_all[k : k + job.frames])
                finished += frames
                paths = output.save(p, frames, job.params, info, seed)
            except VidsdError as e:  # A1111 would swallow it: say it where the user looks
                log.error("the animation was not saved: %s", e)
                processed.comments = f"{processed.comments}\nAnimateDiff: the animation was not saved: {e}".strip()
                return
            videos += [x for x in paths if x.suffix in (".gif", ".mp4", ".webp", ".webm")]
            gif_infos += [info for x in paths if x.suffix == ".gif"]
            shown += frames[:1]
        if _run_by_selectable_script(p):
            return  # e.g. X/Y/Z plot builds its grid from the frames; the animations are on disk
        if getattr(p, "is_api", False):
            with_frames = any(f.value == "Frame" for f in job.params.format)
            frames_out = finished + frames_all[len(finished) :] if with_frames else []  # deflickered when asked
            processed.images = output.encode_files(videos) + frames_out
        else:
            gifs = [str(x) for x in videos if x.suffix == ".gif"]
            if gifs:  # after the grid, if any, so "save selected only" treats them as images;
                # each gallery item needs its infotext (A1111's Save reads infotexts[index])
                at = processed.index_of_first_image
                processed.images = [*processed.images[:at], *gifs, *processed.images[at:]]
                texts = list(processed.infotexts)
                processed.infotexts = [*texts[:at], *gif_infos, *texts[at:]]


def _run_by_selectable_script(p) -> bool:
    """Whether a script from the Script dropdown (X/Y/Z plot, …) runs this job: it expects the
    frames as images, so they are not replaced by the animation files."""
    runner, args = getattr(p, "scripts", None), getattr(p, "script_args", None)
    return bool(runner is not None and getattr(runner, "selectable_scripts", None) and args and args[0])


def _asks_enabled(args) -> bool:
    if not args:
        return False
    first = args[0]
    return bool(first.get("enable")) if isinstance(first, dict) else first is True


def _with_default_formats(args):
    """An API dict without ``format`` gets the formats chosen in Settings, like the widget does."""
    if args and isinstance(args[0], dict) and "format" not in args[0]:
        formats = shared.opts.data.get("vidsd_animatediff_default_formats")
        if formats:
            return ({**args[0], "format": list(formats)}, *args[1:])
    return args


def _job_of(p):
    """The running AnimateDiff job of ``p``, found through ``p``'s own script runner."""
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", ()):
        if isinstance(script, AnimateDiffScript):
            return script.jobs.get(id(p))
    return None


def _on_cfg_denoiser(params):
    p = getattr(params.denoiser, "p", None)
    job = _job_of(p) if p is not None else None
    if job is not None:
        job.on_cfg_denoiser(params)


def _restore_current_model(*_args):
    model = getattr(shared, "sd_model", None)
    if model is not None and hasattr(model, "model"):
        restore_all(model.model.diffusion_model)


def _on_app_started(_demo, app):
    api.mount(app)


def _on_ui_settings():
    settings.register()


script_callbacks.on_cfg_denoiser(_on_cfg_denoiser)
script_callbacks.on_app_started(_on_app_started)
script_callbacks.on_ui_settings(_on_ui_settings)
script_callbacks.on_infotext_pasted(binding.infotext_pasted)
script_callbacks.on_model_loaded(_restore_current_model)
script_callbacks.on_script_unloaded(_restore_current_model)

_xyz = xyz.find_xyz_module()
if _xyz is not None:
    xyz.register(_xyz)
