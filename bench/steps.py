"""Benchmark: what recording a generation's steps costs (Steps animation).

A txt2img generation of one 64x64 image, ``--steps`` (default 20) DDIM steps with classifier-free
guidance, on the diffusers pipeline of ``lib_vidsd.pipelines.steps`` (the WebUI records through the
same :class:`~lib_vidsd.steps.StepRecorder`). Two models with seeded random weights (time does
not depend on the values):

* ``tiny``: the built-in tiny model (UNet 32 channels, VAE 8/16/16/16);
* ``sd15``: SD1.5's shapes: UNet 320/640/1280/1280, cross-attention 768, 8 heads; VAE
  128/256/512/512 with 2 layers per block; a one-layer 768-wide text encoder (encoding the prompt
  happens once per generation and is the same for both variants).

Variants, each a whole generation in one process, alternated (order swapped every other round)
after one untimed warm-up: ``off`` generates without recording; ``fast`` records every step and
decodes the recorded latents with the linear latent->RGB estimate; ``full`` records and decodes
every step with the VAE. Ratios are medians of per-round ratios against ``off``. Goal:
``fast / off <= 1.05``. ``full`` is reported, not judged: at 512x512 a VAE decode costs about
three UNet steps, so recording every step with it multiplies the generation time, as documented.
Writing the movie (an ffmpeg run, the same for any model) is timed separately, once.

One thread (``torch.set_num_threads(1)``): the machine is shared and threads make the noise worse.
Writes JSON (``--json``, default bench/results/steps.json) and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib_vidsd.config import GenerationParams, StepsAnimationParams, StepsDecode, validate  # noqa: E402
from lib_vidsd.pipelines.animate import SDModel, load_sd  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _models import sd15_model  # noqa: E402

from lib_vidsd.pipelines.steps import decoder_for, generate_with_steps  # noqa: E402
from lib_vidsd.steps import StepRecorder, render_steps  # noqa: E402
from lib_vidsd.steps.movie import decode_steps  # noqa: E402

GOAL = 1.05


def run_once(sd: SDModel, gen: GenerationParams, decode: StepsDecode | None) -> int:
    if decode is None:
        generate_with_steps(sd, gen, None)
        return 0
    recorder = StepRecorder()
    run = generate_with_steps(sd, gen, recorder)
    frames = decode_steps(recorder.sequence(0), decoder_for(sd, decode), (gen.width, gen.height))
    assert len(frames) == gen.steps and run.image.shape == (gen.height, gen.width, 3)
    return len(frames)


def bench_model(name: str, sd: SDModel, gen: GenerationParams, repeat: int) -> dict:
    variants = {"off": None, "fast": StepsDecode.FAST, "full": StepsDecode.FULL}
    for decode in variants.values():
        run_once(sd, gen, decode)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(repeat):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for key in order:
            start = time.perf_counter()
            run_once(sd, gen, variants[key])
            times[key].append(time.perf_counter() - start)
    ratios = {
        key: statistics.median(t / o for t, o in zip(times[key], times["off"], strict=True)) for key in ("fast", "full")
    }
    return {
        "model": sd.name,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_fast": ratios["fast"],
        "ratio_full": ratios["full"],
        "pass": ratios["fast"] <= GOAL,
        "all_s": times,
    }


def movie_time(sd: SDModel, gen: GenerationParams) -> float:
    recorder = StepRecorder()
    generate_with_steps(sd, gen, recorder)
    params = validate(StepsAnimationParams, enabled=True, decode="fast")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render_steps(recorder.sequence(0), decoder_for(sd, params.decode), params, root=tmp, stem="x", size=(64, 64))
        return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--models", default="tiny,sd15")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "steps.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = validate(GenerationParams, prompt="a cat", steps=args.steps, width=64, height=64, seed=1, cfg_scale=7)
    results = {}
    for name in args.models.split(","):
        sd = load_sd(None) if name == "tiny" else sd15_model()
        results[name] = bench_model(name, sd, gen, args.repeat)
        if name == "tiny":
            results["movie_write_s"] = movie_time(sd, gen)
        del sd
    ok = all(r["pass"] for k, r in results.items() if isinstance(r, dict))
    report = {"benchmark": "steps", "steps": args.steps, "size": 64, "repeat": args.repeat, "goal": GOAL, **results}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    parts = [
        f"{k}: off {r['median_s']['off']:.3f}s, fast x{r['ratio_fast']:.3f}, full VAE x{r['ratio_full']:.2f}"
        for k, r in results.items()
        if isinstance(r, dict)
    ]
    movie = f"; movie write {results['movie_write_s']:.2f}s" if "movie_write_s" in results else ""
    print(
        f"steps bench (64x64, {args.steps} steps): {'; '.join(parts)}{movie} "
        f"(goal fast <= {GOAL}) {'PASS' if ok else 'FAIL'} -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
