"""Steps animation: record the latent of every sampling step and turn the sequence into a movie.

The sampler's per-step callback feeds a :class:`StepRecorder`; :func:`render_steps` decodes the
recorded latents (VAE, or the fast linear latent→RGB estimate of :mod:`.latent_rgb`), spreads
them over the requested duration (optionally interpolating between steps) and writes the frames
and the movie below a save location.
"""

from .latent_rgb import LATENT_RGB_FACTORS, latents_to_rgb
from .movie import StepsResult, movie_plan, render_steps, steps_movie_path
from .recorder import StepRecorder

__all__ = [
    "LATENT_RGB_FACTORS",
    "StepRecorder",
    "StepsResult",
    "latents_to_rgb",
    "movie_plan",
    "render_steps",
    "steps_movie_path",
]
