"""Stands in for ``modules/sd_samplers_common.py``: the exception that stops sampling, and latent →
image decoding with the full VAE (the preview approximations are not modelled)."""

approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample, approximation=None, model=None):
    """Latents → images in -1..1; the stub knows only the full VAE (``approximation`` 0)."""
    from modules import shared

    if approximation not in (None, 0):
        raise NotImplementedError("a1111 stub: only the full VAE decode")
    model = model if model is not None else shared.sd_model
    return model.decode_first_stage(sample)


class InterruptedException(BaseException):
    """Raised from the denoiser once the job is interrupted or skipped; the sampler catches it and
    returns the latest latent it has."""
