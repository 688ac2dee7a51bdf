"""Benchmark: time per frame of Multi-frame rendering's modes against plain per-frame img2img.

A synthetic clip (``--frames`` frames, default 4, of ``--size`` px, default 64: a smoothed random
texture panned 4 px per frame) is rendered on the diffusers pipeline of
``lib_vidsd.pipelines.multiframe`` (the WebUI runs the same job through A1111's img2img):

* ``plain``: every frame alone, img2img at the same strengths (frame 0 at ``first_denoise`` 1.0,
  the others at ``--denoise``), each output saved as PNG like the job does;
* ``filmstrip``: ``MultiFrameJob`` in filmstrip mode (third cell FirstGen: later frames are
  rendered as 3×-wide strips with the centre inpainted);
* ``cross_frame``: the job in cross_frame mode (frames alone, self-attention also over the first
  and previous frames' recorded tokens);
* ``both``.

Models with seeded random weights: ``tiny`` (the built-in model) and ``sd15`` (SD1.5's UNet/VAE
shapes, see ``bench/_models.py``). Rounds alternate the variants (order reversed every other round)
after one untimed warm-up; the ratios are medians of per-round ratios against ``plain``. Goals:
filmstrip <= 3.3, cross_frame <= 1.5. The mean absolute frame-to-frame difference of each
variant's output (0..255) is reported too (``flicker``), and the same without the step from frame 0
to frame 1 (``flicker_after_first``): frame 0 is rendered alone at ``first_denoise`` 1.0 while the
others keep part of their input, and in the strip modes frame 1 is also the first render in a
3×-wide latent, whose noise under the centre cell is not frame 0's, so that one step dominates the
whole measure. With random weights the model does not use the strip's context, so these numbers
say nothing about consistency with a trained model; they are recorded, not judged.

One thread (``torch.set_num_threads(1)``). Writes JSON (``--json``, default
bench/results/multiframe.json) and prints one summary line.
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

from lib_vidsd.config import GenerationParams, MultiFrameParams, validate  # noqa: E402
from lib_vidsd.multiframe import MultiFrameJob, RenderRequest, save_frame_png  # noqa: E402
from lib_vidsd.multiframe.sources import open_path  # noqa: E402
from lib_vidsd.pipelines.animate import SDModel, load_sd  # noqa: E402
from lib_vidsd.pipelines.multiframe import DiffusersRenderer  # noqa: E402

GOALS = {"filmstrip": 3.3, "cross_frame": 1.5}
MODES = ("filmstrip", "cross_frame", "both")


def clip(frames: int, size: int) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (size, size + 4 * frames, 3), dtype=np.uint8), (0, 0), 2.0)
    return [np.ascontiguousarray(tex[:, 4 * i : 4 * i + size]) for i in range(frames)]


def flicker(images: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(images, images[1:], strict=False)]))


def run_plain(sd: SDModel, gen: GenerationParams, frames: list[np.ndarray], out: Path) -> list[np.ndarray]:
    from PIL import Image

    outputs = []
    out.mkdir(parents=True)
    with DiffusersRenderer(sd, gen) as render:
        for k, frame in enumerate(frames):
            strength = 1.0 if k == 0 else gen.denoising_strength
            req = RenderRequest(k, Image.fromarray(frame), None, gen.width, gen.height, strength, gen.prompt, gen.seed)
            image = np.asarray(render(req).convert("RGB"))
            save_frame_png(out / f"{k:05d}.png", image, "plain")
            outputs.append(image)
    return outputs


def run_mode(sd: SDModel, gen: GenerationParams, folder: Path, mode: str, out: Path) -> list[np.ndarray]:
    from PIL import Image

    params = validate(MultiFrameParams, mode=mode, format=[])
    size = (gen.width, gen.height)
    with open_path(folder, params, size) as source, DiffusersRenderer(sd, gen, cross_frame=mode != "filmstrip") as r:
        job = MultiFrameJob(
            params, r, source=source, out_dir=out, prompt=gen.prompt, seed=gen.seed, denoise=gen.denoising_strength
        )
        result = job.run()
    return [np.asarray(Image.open(p).convert("RGB")) for p in result.frames]


def bench_model(sd: SDModel, gen: GenerationParams, frames: list[np.ndarray], repeat: int) -> dict:
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for k, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"{k:05d}.png")
        counter = iter(range(10**6))

        def fresh() -> Path:
            return Path(tmp) / f"out{next(counter)}"

        variants = {"plain": lambda: run_plain(sd, gen, frames, fresh())}
        for mode in MODES:
            variants[mode] = lambda mode=mode: run_mode(sd, gen, folder, mode, fresh())
        outputs = {name: fn() for name, fn in variants.items()}  # warm-up; its outputs are the measured frames
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(repeat):
            for name in list(variants) if r % 2 == 0 else list(reversed(variants)):
                start = time.perf_counter()
                variants[name]()
                times[name].append((time.perf_counter() - start) / len(frames))
    ratios = {m: statistics.median(t / p for t, p in zip(times[m], times["plain"], strict=True)) for m in MODES}
    return {
        "model": sd.name,
        "per_frame_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio": ratios,
        "pass": {m: ratios[m] <= g for m, g in GOALS.items()},
        "flicker": {k: flicker(v) for k, v in outputs.items()},
        "flicker_after_first": {k: flicker(v[1:]) for k, v in outputs.items()},
        "input_flicker": flicker(frames),
        "all_s": times,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--denoise", type=float, default=0.6)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="tiny,sd15")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "multiframe.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = validate(
        GenerationParams, prompt="a cat", steps=args.steps, width=args.size, height=args.size, seed=1,
        denoising_strength=args.denoise, cfg_scale=7,
    )  # fmt: skip
    frames = clip(args.frames, args.size)
    results = {}
    for name in args.models.split(","):
        sd = load_sd(None) if name == "tiny" else sd15_model()
        results[name] = bench_model(sd, gen, frames, args.repeat)
        del sd
    ok = all(all(r["pass"].values()) for r in results.values())
    report = {"benchmark": "multiframe", "frames": args.frames, "size": args.size, "steps": args.steps,
              "denoise": args.denoise, "repeat": args.repeat, "goals": GOALS, **results}  # fmt: skip
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    parts = [
        f"{k}: plain {r['per_frame_s']['plain']:.3f}s/frame, "
        + ", ".join(f"{m} x{r['ratio'][m]:.2f}" for m in MODES)
        + " (flicker "
        + ", ".join(f"{m} {v:.1f}" for m, v in r["flicker"].items())
        + "; after frame 1 "
        + ", ".join(f"{m} {v:.1f}" for m, v in r["flicker_after_first"].items())
        + ")"
        for k, r in results.items()
    ]
    print(
        f"multiframe bench ({args.frames}x{args.size}px, {args.steps} steps): {'; '.join(parts)} "
        f"(goals filmstrip <= {GOALS['filmstrip']}, cross_frame <= {GOALS['cross_frame']}) "
        f"{'PASS' if ok else 'FAIL'} -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
