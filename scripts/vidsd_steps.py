"""Steps animation in txt2img and img2img: an AlwaysVisible accordion and the recording hooks."""

import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import script_callbacks, scripts  # noqa: E402

from lib_vidsd.errors import VidsdError  # noqa: E402
from vidsd_a1111 import binding, ui  # noqa: E402
from vidsd_a1111.output import encode_files  # noqa: E402
from vidsd_a1111.steps_job import ERROR_KEY, MOVIE_KEY, StepsJob, animatediff_frames, movie_relative  # noqa: E402

log = logging.getLogger("vidsd.a1111.steps")
SHOWN_IN_GALLERY = (".gif", ".webp")


class StepsAnimationScript(scripts.Script):
    def __init__(self):
        super().__init__()
        self.jobs: dict[int, StepsJob] = {}  # id(p) → its job, while the generation runs

    def title(self):
        return binding.STEPS.key

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return ui.build(self, is_img2img, binding.STEPS)

    def before_process(self, p, *args):
        self.jobs.pop(id(p), None)
        try:
            params = binding.STEPS.parse_args(args)
            if not params.enabled:
                return
            self.jobs[id(p)] = StepsJob.start(p, params, self.is_img2img)
            p.extra_generation_params.pop(ERROR_KEY, None)
        except VidsdError as e:  # the API answers 422 before this; the UI shows it in the comments
            if _asks_enabled(args):
                log.error("steps animation is off for this run: %s", e)
                if hasattr(p, "comment"):
                    p.comment(f"Steps animation: {e}")

    def before_process_batch(self, p, *args, **kwargs):
        job = self.jobs.get(id(p))
        if job is not None:
            job.new_batch()

    def process_before_every_sampling(self, p, *args, **kwargs):
        job = self.jobs.get(id(p))
        if job is not None:
            job.before_sampling(p)

    def postprocess_image(self, p, pp, *args):
        job = self.jobs.get(id(p))
        if job is None:
            return
        p.extra_generation_params.pop(MOVIE_KEY, None)
        p.extra_generation_params.pop(ERROR_KEY, None)
        frames = animatediff_frames(p)
        if frames and p.batch_index != 0:
            return  # one movie for the whole animation, made with its first frame
        try:
            path = job.movie_for(p, p.batch_index, pp.image.size, frames)
        except VidsdError as e:  # said in this image's infotext: the API's answer and the UI show it
            log.error("steps animation: no movie for image %d: %s", p.batch_index, e)
            job.error = str(e)
            p.extra_generation_params[ERROR_KEY] = str(e)
            return
        if path is not None and job.saves(p):
            p.extra_generation_params[MOVIE_KEY] = movie_relative(p, path)

    def postprocess(self, p, processed, *args):
        job = self.jobs.pop(id(p), None)
        if job is None:
            return
        p.extra_generation_params.pop(MOVIE_KEY, None)
        p.extra_generation_params.pop(ERROR_KEY, None)
        try:
            if job.error:
                processed.comments = f"{processed.comments}\nSteps animation: {job.error}".strip()
            if not job.movies:
                return
            if getattr(p, "is_api", False):
                processed.images = list(processed.images) + encode_files(job.movies)
                processed.infotexts = list(processed.infotexts) + job.movie_infotexts
                return
            shown = [
                (m, t) for m, t in zip(job.movies, job.movie_infotexts, strict=True) if m.suffix in SHOWN_IN_GALLERY
            ]
            # each gallery item needs an infotext: A1111's Save reads infotexts[index]
            processed.images = list(processed.images) + [str(m) for m, _ in shown]
            processed.infotexts = list(processed.infotexts) + [t for _, t in shown]
            others = [str(m) for m in job.movies if m.suffix not in SHOWN_IN_GALLERY]
            if others:
                processed.comments = f"{processed.comments}\nSteps animation: {', '.join(others)}".strip()
        finally:
            job.cleanup()


def _asks_enabled(args) -> bool:
    if not args:
        return False
    first = args[0]
    return bool(first.get("enabled")) if isinstance(first, dict) else first is True


script_callbacks.on_infotext_pasted(binding.STEPS.infotext_pasted)
