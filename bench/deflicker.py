"""Benchmark: the patch-match deflicker against the FastBlend reference's CPU timings and a naive matcher.

Clip: ``--frames`` (16) frames of ``S x S`` for each ``--sizes`` (128 256), built like the reference's
timing clip in ``shared/fixtures/stylize/speed.json`` (virtual camera: shift ``(1.2, 0.8) * S/128`` px,
0.3 degrees and +0.3 % zoom per frame; flicker: per-channel gain, offset, a smooth colour blotch and
pixel noise, seed 7), except that the photograph is a seeded 1/f colour texture (scikit-image's
astronaut is not a dependency). The matcher's early termination makes its time depend a little on
the content.

(a) Ours: :func:`lib_vidsd.consistency.deflicker.deflicker` / ``interpolate_keyframes`` on CPU with the
    reference's settings (batch 8, patch 5, 5 iterations, guide weight 10, identity start; keyframes
    0, 8, 15 with patch 15 for ``interp_k0_8_15``), ``--threads`` torch threads (default 1: the
    reference's numpy kernels are single-threaded). Seconds per frame next to ``speed.json``'s
    (same configurations; that machine: 2-core AMD EPYC, nothing else running), with the number of
    patch-match pairs each needed.
(b) Naive: the same patch match (blend matcher, one pyramid level) written per pixel in Python with
    numpy patch slices, on a 32x32 crop, one pair; compared with ours on the same crop (like for
    like) and scaled to one pair at ``S`` by the pixel count of the pyramid (the per-pixel work does
    not depend on the level size).

Goals: >= 10x the naive matcher, and fewer seconds per frame than the reference's CPU path. Writes
JSON (``--json``, default bench/results/deflicker.json) and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lib_vidsd.consistency import patchmatch as pm  # noqa: E402
from lib_vidsd.consistency.deflicker import deflicker, interpolate_keyframes  # noqa: E402

SPEED_JSON = ROOT.parent / "shared" / "fixtures" / "stylize" / "speed.json"
CONFIGS = {
    "accurate_w3": {"mode": "accurate", "window": 3},
    "balanced_w3": {"mode": "balanced", "window": 3},
    "fast_w15": {"mode": "fast", "window": 15},
    "interp_k0_8_15": {"keyframes": (0, 8, 15), "patch_size": 15},
}
GOAL_NAIVE = 10.0


# ---------------------------------------------------------------------------------------------------
# The clip
# ---------------------------------------------------------------------------------------------------


def texture(size: int, seed: int) -> np.ndarray:
    """A ``size x size`` RGB texture with a natural image's 1/f amplitude spectrum, 0..255 float."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / size)
    channels = []
    base = np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((size, size)))).real
    for _ in range(3):
        own = np.fft.ifft2(amplitude * np.exp(2j * np.pi * rng.random((size, size)))).real
        channels.append(0.7 * base + 0.3 * own)  # correlated channels, like a photograph
    image = np.stack(channels, axis=-1)
    image = (image - image.min()) / (image.max() - image.min())
    return image * 255.0


def make_clip(size: int, frames: int = 16, seed: int = 7) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(guide, style)``: a virtual camera over a texture, and the same frames with flicker."""
    import cv2

    photo = texture(2 * size, seed).astype(np.float32)
    rng = np.random.default_rng(seed)
    guide, style = [], []
    half = (size - 1) / 2
    for t in range(frames):
        # Output pixel -> photo coordinate: rotate and zoom about the frame centre, then move the centre.
        angle = math.radians(0.3 * t)
        scale = 1 / (1 + 0.003 * t)
        a = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        centre = np.array([size + 1.2 * size / 128 * t, size + 0.8 * size / 128 * t])  # (x, y) in the photo
        matrix = np.hstack([a, (centre - a @ np.array([half, half]))[:, None]])
        frame = cv2.warpAffine(photo, matrix, (size, size), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        frame = np.clip(np.rint(frame), 0, 255)
        guide.append(frame.astype(np.uint8))
        gain = rng.uniform(0.88, 1.12, 3)
        offset = rng.uniform(-15, 15)
        blotch = cv2.resize(rng.normal(0, 8, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        noise = rng.normal(0, 4, frame.shape)
        style.append(np.clip(np.rint(frame * gain + offset + blotch + noise), 0, 255).astype(np.uint8))
    return guide, style


# ---------------------------------------------------------------------------------------------------
# The naive matcher: one level, one pair, a Python loop over pixels
# ---------------------------------------------------------------------------------------------------


def naive_match(guide_s, guide_t, style_s, settings: pm.MatchSettings, seed: int = 0) -> np.ndarray:
    """Per-pixel patch match (blend matcher, one level): float ``(H, W, 3)`` remapped style."""
    rng = np.random.default_rng(seed)
    h, w = guide_s.shape[:2]
    pad = settings.pad
    gw = settings.guide_weight

    def padded(image):
        return np.pad(image.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)))

    src_g, tgt_g, src_s = padded(guide_s), padded(guide_t), padded(style_s)
    nnf = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), axis=-1)

    def remap(p):
        r = p // 2
        out = np.zeros((h, w, 3), np.float32)
        for x in range(h):
            for y in range(w):
                total, count = np.zeros(3, np.float32), 0
                for dx in range(-r, r + 1):
                    for dy in range(-r, r + 1):
                        if 0 <= x + dx < h and 0 <= y + dy < w:
                            u, v = nnf[x + dx, y + dy] - (dx, dy)
                            if 0 <= u < h and 0 <= v < w:
                                total += src_s[u + pad, v + pad]
                                count += 1
                out[x, y] = total / count
        return out

    def cost(x, y, u, v, p, est):
        r = p // 2
        tg = tgt_g[x + pad - r : x + pad + r + 1, y + pad - r : y + pad + r + 1]
        sg = src_g[u + pad - r : u + pad + r + 1, v + pad - r : v + pad + r + 1]
        ts = est[x + pad - r : x + pad + r + 1, y + pad - r : y + pad + r + 1]
        ss = src_s[u + pad - r : u + pad + r + 1, v + pad - r : v + pad + r + 1]
        return gw * float(((tg - sg) ** 2).sum()) + float(((ts - ss) ** 2).sum())

    for p in settings.patch_sizes:
        est = padded(remap(p))
        err = np.array([[cost(x, y, *nnf[x, y], p, est) for y in range(w)] for x in range(h)])

        def cost_now(x, y, u, v, p=p, est=est):
            return cost(x, y, u, v, p, est)

        steps = [(1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0)]
        for d in rng.permutation(4):
            dr, dc, _ = steps[d]
            cand = nnf.copy()
            for x in range(h):
                for y in range(w):
                    nx, ny = min(max(x - dr, 0), h - 1), min(max(y - dc, 0), w - 1)
                    cand[x, y] = nnf[nx, ny] + (dr, dc)
            _accept(nnf, err, cand, h, w, cost_now)
        for _ in range(pm.RANDOM_SEARCH_STEPS):
            cand = nnf + rng.integers(-4, 5, nnf.shape)
            _accept(nnf, err, cand, h, w, cost_now)
    return remap(settings.patch_sizes[-1])


def _accept(nnf, err, cand, h, w, cost) -> None:
    for x in range(h):
        for y in range(w):
            u, v = min(max(cand[x, y, 0], 0), h - 1), min(max(cand[x, y, 1], 0), w - 1)
            e = cost(x, y, u, v)
            if e < err[x, y]:
                nnf[x, y] = (u, v)
                err[x, y] = e


# ---------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------


def run_config(name: str, guide, style, device: str = "cpu") -> tuple[float, int]:
    """Seconds for one configuration on the whole clip, and the patch-match pairs it needed."""
    config = CONFIGS[name]
    pairs = {"n": 0}

    def progress(done, total, text=""):
        pairs["n"] = done

    start = time.perf_counter()
    if "keyframes" in config:
        keys = {k: style[k] for k in config["keyframes"]}
        interpolate_keyframes(guide, keys, patch_size=config["patch_size"], device=device, progress=progress)
    else:
        deflicker(style, guide=guide, mode=config["mode"], window=config["window"], device=device, progress=progress)
    return time.perf_counter() - start, pairs["n"]


def pyramid_pixels(size: int, settings: pm.MatchSettings) -> int:
    return sum(h * w for h, w in pm.pyramid_sizes(size, size, settings))


def bench_naive(guide, style, crop: int = 32) -> dict:
    settings = pm.MatchSettings()
    sg, tg, ss = (a[:crop, :crop] for a in (guide[0], guide[1], style[0]))
    start = time.perf_counter()
    naive_match(sg, tg, ss, settings)
    naive_s = time.perf_counter() - start
    tensors = [torch.tensor(a).float().unsqueeze(0) for a in (sg, tg, ss)]
    matcher = pm.PatchMatcher(crop, crop, settings)
    matcher.match(*tensors, pm.SeededRandom(0))  # warm-up
    runs = []
    for seed in range(5):
        start = time.perf_counter()
        matcher.match(*tensors, pm.SeededRandom(seed))
        runs.append(time.perf_counter() - start)
    ours_s = float(np.median(runs))
    return {"crop": crop, "naive_s_per_pair": naive_s, "ours_s_per_pair": ours_s, "speedup": naive_s / ours_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device of the matcher (cpu, cuda)")
    parser.add_argument("--json", type=Path, default=None, help="default: bench/results/deflicker[_DEVICE].json")
    args = parser.parse_args(argv)
    suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
    args.json = args.json or ROOT / "bench" / "results" / f"deflicker{suffix}.json"
    torch.set_num_threads(args.threads)
    reference = json.loads(SPEED_JSON.read_text()) if SPEED_JSON.exists() else None
    ref_runs = {(r["size"], r["config"]): r for r in reference["per_run"]} if reference else {}
    ref_pairs = {(r["size"], r["matcher"]): r for r in reference["per_pair"]} if reference else {}

    naive_clip = make_clip(64, frames=2)
    naive = bench_naive(*naive_clip)
    results = []
    for size in args.sizes:
        guide, style = make_clip(size, args.frames)
        blend_pixels = pyramid_pixels(size, pm.MatchSettings())
        if args.device != "cpu":  # warm-up at this size: kernels, allocator
            deflicker(style[:4], guide=guide[:4], mode="accurate", window=1, device=args.device)
        for name in args.configs:
            seconds, pairs = run_config(name, guide, style, args.device)
            row = {
                "size": size,
                "config": name,
                "frames": args.frames,
                "seconds_total": round(seconds, 3),
                "seconds_per_frame": round(seconds / args.frames, 4),
                "patch_match_pairs": pairs,
            }
            ref = ref_runs.get((size, name))
            if ref:
                row["reference_seconds_per_frame"] = ref["seconds_per_frame"]
                row["reference_patch_match_pairs"] = ref["patch_match_pairs"]
                row["speedup_vs_reference"] = round(ref["seconds_per_frame"] / row["seconds_per_frame"], 2)
            if name in ("fast_w15", "balanced_w3") and ref:
                # The naive matcher's cost per pixel is level-independent: scale the crop's pair to S.
                naive_pair = naive["naive_s_per_pair"] * blend_pixels / naive["crop"] ** 2
                row["naive_seconds_per_frame_est"] = round(naive_pair * ref["patch_match_pairs"] / args.frames, 1)
                row["speedup_vs_naive_est"] = round(row["naive_seconds_per_frame_est"] / row["seconds_per_frame"], 1)
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    record = {
        "what": f"seconds per frame of lib_vidsd.consistency.deflicker on {args.device}; see bench/deflicker.py",
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_visible": __import__("os").cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_at_end": list(getattr(__import__("os"), "getloadavg", lambda: (math.nan,) * 3)()),
        },
        "threads": args.threads,
        "naive": naive,
        "reference_per_pair": list(ref_pairs.values()),
        "runs": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    speedups = [r["speedup_vs_reference"] for r in results if "speedup_vs_reference" in r]
    parts = [
        f"{r['size']}px {r['config']} {r['seconds_per_frame']:.2f} s/frame"
        + (
            f" (ref {r['reference_seconds_per_frame']:.2f}, {r['speedup_vs_reference']:.1f}x)"
            if "speedup_vs_reference" in r
            else ""
        )
        for r in results
    ]
    ok_naive = naive["speedup"] >= GOAL_NAIVE
    ok_ref = bool(speedups) and min(speedups) > 1.0
    print(
        f"deflicker ({args.device}): {'; '.join(parts)}; naive 32px pair {naive['naive_s_per_pair']:.1f} s vs ours "
        f"{naive['ours_s_per_pair'] * 1000:.0f} ms ({naive['speedup']:.0f}x, goal >= {GOAL_NAIVE:.0f}x: "
        f"{'ok' if ok_naive else 'MISSED'}); faster than the reference everywhere: {'ok' if ok_ref else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
