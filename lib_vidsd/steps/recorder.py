"""Collecting the latents a sampler reports at each step."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class StepRecorder:
    """Keeps a CPU copy of the latent batch at every sampler callback.

    ``capture`` is ``"denoised"`` (the model's estimate of the finished image, what live previews
    show) or ``"noisy"`` (the sampler's current latent). Every callback counts, whatever the
    sampler's step count says (DPM adaptive calls back a variable number of times; img2img k-samplers
    once per step of the shortened schedule). ``pass_index`` separates hires fix's two passes,
    whose latents have different sizes.
    """

    capture: str = "denoised"
    callbacks: int = 0
    latents: list[torch.Tensor] = field(default_factory=list)
    passes: list[int] = field(default_factory=list)
    pass_index: int = 0

    def record(self, noisy: torch.Tensor, denoised: torch.Tensor | None = None) -> None:
        """One sampler callback: ``noisy`` is the current latent, ``denoised`` the model's estimate
        (samplers that report none fall back to ``noisy``). Stores a float32 CPU copy."""
        latent = denoised if self.capture == "denoised" and denoised is not None else noisy
        self.latents.append(latent.detach().to("cpu", torch.float32, copy=True))
        self.passes.append(self.pass_index)
        self.callbacks += 1

    def on_callback(self, d: dict) -> None:
        """A k-diffusion / WebUI sampler callback dict (``x``, ``denoised``, ``i``, …)."""
        self.record(d["x"], d.get("denoised"))

    def next_pass(self) -> None:
        self.pass_index += 1

    def sequence(self, index: int, *, skip: int = 0, passes: set[int] | None = None) -> list[torch.Tensor]:
        """The latents of batch item ``index`` (``[4, h, w]`` each), first ``skip`` callbacks left out."""
        out = []
        for latent, pass_index in zip(self.latents[skip:], self.passes[skip:], strict=True):
            if passes is None or pass_index in passes:
                out.append(latent[index])
        return out

    def batch_size(self) -> int:
        return self.latents[0].shape[0] if self.latents else 0

    def clear(self) -> None:
        self.latents.clear()
        self.passes.clear()
        self.callbacks = 0
        self.pass_index = 0
