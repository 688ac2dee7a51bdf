"""Benchmark: time per frame of Keyframe animation against plain generation at the same size.

On the diffusers pipeline of ``lib_vidsd.pipelines.keyframes`` (the WebUI runs the same plan through
A1111's own txt2img/img2img), ``--frames`` frames (default 6) of ``--size`` px (default 64):

* ``plain_txt2img``: one prompt, every frame a plain txt2img (prompt encoded, seeded noise,
  scheduler loop with CFG, VAE decode), each saved as PNG: written here, independent of the job;
* ``keyframes``: ``KeyframeJob`` in mode ``none`` with two prompt keys (embeddings and noise slerped
  every frame), ratio against ``plain_txt2img``;
* ``plain_loopback``: frame 0 txt2img, then each frame img2img of the previous output at the same
  strength (``lib_vidsd.pipelines.multiframe.DiffusersRenderer``), each saved as PNG;
* ``keyframes_2d``: mode ``2d`` (zoom, angle, translation, colour match to the first frame), ratio
  against ``plain_loopback``;
* ``keyframes_2d_coherence``: the same with latent coherence at every step; its cost is reported
  against ``keyframes_2d`` (no goal).

Models with seeded random weights: ``tiny`` (built-in) and ``sd15`` (SD1.5 UNet/VAE shapes,
``bench/_models.py``). One untimed warm-up, then rounds alternating the order; ratios are medians
of per-round ratios. Goal: keyframes and keyframes_2d <= 1.10. One thread. Writes JSON (``--json``,
default bench/results/keyframes.json) and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _models import sd15_model  # noqa: E402
from PIL import Image  # noqa: E402

from lib_vidsd.config import GenerationParams, KeyframeParams, validate  # noqa: E402
from lib_vidsd.keyframe.job import KeyframeJob  # noqa: E402
from lib_vidsd.keyframe.plan import plan_animation  # noqa: E402
from lib_vidsd.multiframe import RenderRequest, save_frame_png  # noqa: E402
from lib_vidsd.pipelines.animate import SDModel, encode_prompts, load_sd, make_scheduler  # noqa: E402
from lib_vidsd.pipelines.keyframes import DiffusersKeyframeRenderer  # noqa: E402
from lib_vidsd.pipelines.multiframe import DiffusersRenderer  # noqa: E402

GOAL = 1.10
PROMPTS = "0: a red ball on a table\n{last}: a blue cube on a table"
MOTION = {"zoom": "0: (1.04)", "angle": "0: (2)", "translation_x": "0: (1.5)", "color_match": 1.0}


def plain_txt2img(sd: SDModel, gen: GenerationParams, seed: int) -> np.ndarray:
    """A plain txt2img: what a host does for one image with one prompt."""
    with torch.no_grad():
        cond, uncond = encode_prompts(sd, [gen.prompt, gen.negative_prompt]).chunk(2)
        scheduler = make_scheduler(gen.scheduler, sd.scheduler_config, None)
        scheduler.set_timesteps(gen.steps)
        shape = (1, 4, gen.height // 8, gen.width // 8)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x = scheduler.scale_model_input(latents, t)
            eps_c, eps_u = sd.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(
                2
            )
            latents = scheduler.step(eps_u + gen.cfg_scale * (eps_c - eps_u), t, latents).prev_sample
        image = sd.vae.decode(latents / sd.latent_scale).sample[0]
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def run_plain(sd: SDModel, gen: GenerationParams, frames: int, out: Path) -> None:
    out.mkdir(parents=True)
    for k in range(frames):
        save_frame_png(out / f"{k:05d}.png", plain_txt2img(sd, gen, gen.seed + k), "plain")


def run_plain_loopback(sd: SDModel, gen: GenerationParams, frames: int, strength: float, out: Path) -> None:
    out.mkdir(parents=True)
    image = plain_txt2img(sd, gen, gen.seed)
    save_frame_png(out / "00000.png", image, "plain")
    with DiffusersRenderer(sd, gen) as render:
        for k in range(1, frames):
            req = RenderRequest(k, Image.fromarray(image), None, gen.width, gen.height, strength, gen.prompt, gen.seed)
            image = np.asarray(render(req).convert("RGB"))
            save_frame_png(out / f"{k:05d}.png", image, "plain")


def run_keyframes(sd: SDModel, gen: GenerationParams, frames: int, out: Path, **fields) -> None:
    params = validate(KeyframeParams, prompts=PROMPTS.format(last=frames - 1), format=[], **fields)
    plan = plan_animation(params, prompt="", seed=gen.seed, cfg_scale=gen.cfg_scale)
    renderer = DiffusersKeyframeRenderer(sd, gen)
    KeyframeJob(params, plan, renderer, out_dir=out, size=(gen.width, gen.height), seed=gen.seed).run()


def bench_model(
    sd: SDModel, gen: GenerationParams, frames: int, strength: float, coherence: float, repeat: int
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def fresh() -> Path:
            return Path(tmp) / f"out{next(counter)}"

        motion = {"mode": "2d", "strength": f"0: ({strength})", **MOTION}
        variants = {
            "plain_txt2img": lambda: run_plain(sd, gen, frames, fresh()),
            "keyframes": lambda: run_keyframes(sd, gen, frames, fresh()),
            "plain_loopback": lambda: run_plain_loopback(sd, gen, frames, strength, fresh()),
            "keyframes_2d": lambda: run_keyframes(sd, gen, frames, fresh(), **motion),
            "keyframes_2d_coherence": lambda: run_keyframes(
                sd, gen, frames, fresh(), coherence_scale=coherence, coherence_alpha=0.5, **motion
            ),
        }
        for fn in variants.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(repeat):
            for name in list(variants) if r % 2 == 0 else list(reversed(variants)):
                start = time.perf_counter()
                variants[name]()
                times[name].append((time.perf_counter() - start) / frames)

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    ratios = {
        "keyframes": ratio("keyframes", "plain_txt2img"),
        "keyframes_2d": ratio("keyframes_2d", "plain_loopback"),
        "coherence_cost": ratio("keyframes_2d_coherence", "keyframes_2d"),
    }
    return {
        "model": sd.name,
        "per_frame_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio": ratios,
        "pass": {k: ratios[k] <= GOAL for k in ("keyframes", "keyframes_2d")},
        "all_s": times,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--strength", type=float, default=0.6)
    ap.add_argument("--coherence", type=float, default=None, help="coherence scale (default: half the latent size)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="tiny,sd15")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "keyframes.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = validate(
        GenerationParams, prompt="a red ball on a table", steps=args.steps, width=args.size, height=args.size,
        seed=1, cfg_scale=7, scheduler="ddim",
    )  # fmt: skip
    coherence = args.coherence if args.coherence is not None else 4 * (args.size // 8) ** 2 / 4  # 2·s/N = 0.5
    results = {}
    for name in args.models.split(","):
        sd = load_sd(None) if name == "tiny" else sd15_model()
        results[name] = bench_model(sd, gen, args.frames, args.strength, coherence, args.repeat)
        del sd
    ok = all(all(r["pass"].values()) for r in results.values())
    report = {"benchmark": "keyframes", "frames": args.frames, "size": args.size, "steps": args.steps,
              "strength": args.strength, "coherence_scale": coherence, "repeat": args.repeat, "goal": GOAL,
              **results}  # fmt: skip
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    parts = [
        f"{k}: txt2img {r['per_frame_s']['plain_txt2img']:.3f}s/frame, keyframes x{r['ratio']['keyframes']:.3f}, "
        f"loopback {r['per_frame_s']['plain_loopback']:.3f}s/frame, 2d x{r['ratio']['keyframes_2d']:.3f}, "
        f"coherence cost x{r['ratio']['coherence_cost']:.3f}"
        for k, r in results.items()
    ]
    print(
        f"keyframes bench ({args.frames}x{args.size}px, {args.steps} steps): {'; '.join(parts)} "
        f"(goal <= {GOAL}) {'PASS' if ok else 'FAIL'} -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
