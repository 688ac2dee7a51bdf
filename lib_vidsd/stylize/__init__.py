"""Video stylisation (DiffSynth): the renderer-agnostic core shared by the A1111 script and the CLI.

* :func:`chunked_unet_call` — one UNet evaluation over a clip in chunks of frames, driving
  :class:`~lib_vidsd.attention.combine.CombineAttention`; :class:`ReferenceLatents` — reference images'
  latents noised per step;
* :class:`SmootherSchedule`, :func:`smooth_predicted`, :func:`noise_from_prediction` — the in-loop
  patch-match smoother on the predicted clean latents;
* :func:`read_stylize_input`, :func:`decode_references` — the source frames and reference images;
* :class:`StylizeJob` — post deflicker, contrast/sharpness, PNG frames and videos;
  :func:`stylize_infotext`;
* :func:`diffsynth_config` — DiffSynth's JSON config → :class:`~lib_vidsd.config.StylizeParams`,
  :class:`~lib_vidsd.config.GenerationParams` and the runner's extras.
"""

from .chunks import ReferenceLatents, alpha_prod_at, chunked_unet_call, gather_rows
from .diffsynth import DiffSynthExtras, diffsynth_config
from .inputs import StylizeInput, decode_references, read_stylize_input
from .job import StylizeJob, StylizeResult, frame_file, stylize_infotext
from .smoother import SmootherSchedule, noise_from_prediction, smooth_predicted

__all__ = [
    "DiffSynthExtras",
    "ReferenceLatents",
    "SmootherSchedule",
    "StylizeInput",
    "StylizeJob",
    "StylizeResult",
    "alpha_prod_at",
    "chunked_unet_call",
    "decode_references",
    "diffsynth_config",
    "frame_file",
    "gather_rows",
    "noise_from_prediction",
    "read_stylize_input",
    "smooth_predicted",
    "stylize_infotext",
]
