"""Stands in for ``modules/sd_samplers_common.py``; only the exception that stops sampling."""


class InterruptedException(BaseException):
    """Raised from the denoiser once the job is interrupted or skipped; the sampler catches it and
    returns the latest latent it has."""
