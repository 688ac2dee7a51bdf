"""Benchmark: our frame interpolation (``flow`` and ``mci``) against the bare tools doing the same work.

Input: ``--frames`` (default 12) frames of ``--size`` x ``--size`` (default 512) cut from a
smoothed random texture panned by (3, 2) px per frame, so every gap has the same known motion.

(a) ``flow``: ``interpolate(frames, 2, "flow")`` (DIS preset medium; one new frame per gap) against
    OpenCV's DIS-medium flow alone on the same frame pairs. Our method computes dense flow in
    BOTH directions per gap (a->b and b->a) and then warps/blends, so the baseline is DIS run both
    ways per pair: RGB->grey conversion plus two ``calc`` calls, with one ``DISOpticalFlow``
    object made once and reused (ours makes one per call). Throughput is gaps (= new frames)
    per second; ratio = ours fps / DIS fps = DIS time / our time. Goal: >= 0.80. A one-way DIS
    time is recorded too, for reference.
(b) ``mci``: ``mci_clip(frames, 2)`` (frames piped to ffmpeg's minterpolate and read back) against
    the plain ffmpeg command doing the same work: the same padded frames (mci_clip appends two
    copies of the last frame) from a rawvideo file, the same ``-vf`` string as ``mci.FILTER``,
    rawvideo rgb24 out to /dev/null. Ratio = ours time / plain time. Goal: <= 1.10.

(c) ``film`` / ``rife`` (``--networks``): ``interpolate(frames, 2, method, model)`` (uint8 frames in,
    tensors made on the model's device, padding, the network, clamp, uint8 back) against calling
    the bare network on the same frames already as device tensors (``model(x0, x1, 0.5)`` per gap,
    the FILM frames padded to 64 beforehand as the wrapper does). Full-size networks (FILM: 64
    filters; RIFE 4.7: real widths) with seeded random weights: the time does not depend on the
    values. ``--device cuda`` runs them on the GPU (``--half`` in float16). Ratio = ours / bare.
    Goal: <= 1.10.

Each case runs ``--repeat`` times, alternating ours and the baseline (order swapped every other
round), after one untimed warm-up of each; medians are compared. Writes JSON (``--json``, default
bench/results/interp.json) and prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib_vidsd.interpolate import interpolate  # noqa: E402
from lib_vidsd.interpolate import mci as mci_mod  # noqa: E402
from lib_vidsd.interpolate.mci import mci_clip  # noqa: E402
from lib_vidsd.video import ffmpeg_exe  # noqa: E402

PAN = (3, 2)  # (dx, dy) pixels per frame
GOAL_FLOW = 0.80
GOAL_MCI = 1.10


def panned_texture(frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``frames`` crops of a smoothed RGB noise texture, each shifted by :data:`PAN` from the last."""
    import cv2

    rng = np.random.default_rng(seed)
    big = size + max(PAN) * frames + 8
    noise = rng.integers(0, 256, (big, big, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(noise, (0, 0), 2.0)
    tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)
    return [
        np.ascontiguousarray(tex[i * PAN[1] : i * PAN[1] + size, i * PAN[0] : i * PAN[0] + size]) for i in range(frames)
    ]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _alternate(a, b, repeat: int) -> tuple[list[float], list[float]]:
    a()
    b()  # warm-up, untimed
    ta, tb = [], []
    for r in range(repeat):
        if r % 2 == 0:
            ta.append(_timed(a))
            tb.append(_timed(b))
        else:
            tb.append(_timed(b))
            ta.append(_timed(a))
    return ta, tb


def bench_flow(clip: list[np.ndarray], repeat: int) -> dict:
    import cv2

    gaps = len(clip) - 1
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def ours() -> None:
        out = interpolate(clip, 2, "flow")
        if len(out) != 2 * gaps + 1:
            raise RuntimeError(f"flow gave {len(out)} frames")

    def dis_both() -> None:
        for a, b in zip(clip, clip[1:], strict=False):
            ga, gb = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            dis.calc(ga, gb, None)
            dis.calc(gb, ga, None)

    def dis_one() -> None:
        for a, b in zip(clip, clip[1:], strict=False):
            dis.calc(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)

    ours_t, dis_t = _alternate(ours, dis_both, repeat)
    one_t = [_timed(dis_one) for _ in range(repeat)]
    o, d = statistics.median(ours_t), statistics.median(dis_t)
    return {
        "gaps": gaps,
        "ours_s": o,
        "dis_both_s": d,
        "dis_one_way_s": statistics.median(one_t),
        "ours_fps": gaps / o,
        "dis_both_fps": gaps / d,
        "ratio": d / o,
        "goal": f">= {GOAL_FLOW}",
        "ours_all": ours_t,
        "dis_both_all": dis_t,
        "dis_one_way_all": one_t,
        "cv2_threads": cv2.getNumThreads(),
        "cv2_version": cv2.__version__,
    }


def bench_mci(clip: list[np.ndarray], repeat: int) -> dict:
    n = len(clip)
    size = clip[0].shape[0]
    want = (n - 1) * 2 + 1
    exe = ffmpeg_exe()
    padded = clip + [clip[-1]] * mci_mod._TAIL  # what mci_clip feeds ffmpeg (no size padding at this size)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "frames.rgb"
        raw.write_bytes(b"".join(f.tobytes() for f in padded))
        argv = [
            exe, "-hide_banner", "-nostdin", "-v", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", "1", "-i", str(raw),
            "-vf", mci_mod.FILTER.format(fps=2),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null",
        ]  # fmt: skip

        def ours() -> None:
            out = mci_clip(clip, 2)
            if len(out) != want:
                raise RuntimeError(f"mci gave {len(out)} frames")

        def plain() -> None:
            subprocess.run(argv, check=True)

        ours_t, plain_t = _alternate(ours, plain, repeat)
    o, p = statistics.median(ours_t), statistics.median(plain_t)
    return {
        "frames_in": n,
        "frames_out": want,
        "ours_s": o,
        "plain_s": p,
        "ratio": o / p,
        "goal": f"<= {GOAL_MCI}",
        "ours_all": ours_t,
        "plain_all": plain_t,
        "filter": mci_mod.FILTER.format(fps=2),
        "plain_argv": argv[1:],
        "ffmpeg": exe,
    }


GOAL_NETWORK = 1.10


def _network(method: str, device: str, half: bool):
    import torch

    torch.manual_seed(0)
    if method == "film":
        from lib_vidsd.interpolate.film import FILMNet

        model = FILMNet()
    else:
        from lib_vidsd.interpolate.rife import IFNet

        model = IFNet("4.7")
    model = model.to(device, torch.float16 if half else torch.float32).eval().requires_grad_(False)
    return model


def bench_network(method: str, clip: list[np.ndarray], repeat: int, device: str, half: bool) -> dict:
    import torch
    import torch.nn.functional as F

    model = _network(method, device, half)
    dtype = next(model.parameters()).dtype
    gaps = len(clip) - 1
    tensors = [
        torch.from_numpy(f).to(device).permute(2, 0, 1)[None].to(dtype).div(255) for f in clip
    ]  # what the wrapper makes from each frame
    if method == "film":
        h, w = tensors[0].shape[-2:]
        ph, pw = -h % 64, -w % 64
        tensors = [F.pad(t, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) for t in tensors]
        dt = tensors[0].new_full((1, 1), 0.5)

        def call(a, b):
            return model(a, b, dt)
    else:
        from lib_vidsd.interpolate.rife import default_scale_list

        scales = default_scale_list(model.version)

        def call(a, b):
            return model(a, b, 0.5, scales)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def ours() -> None:
        out = interpolate(clip, 2, method, model)
        if len(out) != 2 * gaps + 1:
            raise RuntimeError(f"{method} gave {len(out)} frames")

    def bare() -> None:
        with torch.inference_mode():
            for a, b in zip(tensors, tensors[1:], strict=False):
                call(a, b)
        sync()

    ours_t, bare_t = _alternate(ours, bare, repeat)
    o, b = statistics.median(ours_t), statistics.median(bare_t)
    return {
        "device": device,
        "dtype": str(dtype),
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "gaps": gaps,
        "ours_s": o,
        "bare_s": b,
        "ratio": o / b,
        "goal": f"<= {GOAL_NETWORK}",
        "pass": o / b <= GOAL_NETWORK,
        "ours_all": ours_t,
        "bare_all": bare_t,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "interp.json"))
    ap.add_argument("--networks", action="store_true", help="also time the FILM and RIFE wrappers")
    ap.add_argument("--only-networks", action="store_true", help="time only the FILM and RIFE wrappers")
    ap.add_argument("--network-size", type=int, default=None, help="frame side for the networks (default --size)")
    ap.add_argument("--network-frames", type=int, default=None, help="frames for the networks (default --frames)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (networks only)")
    ap.add_argument("--half", action="store_true", help="float16 networks (CUDA)")
    args = ap.parse_args()
    if args.networks or args.only_networks:
        net_clip = panned_texture(args.network_frames or args.frames, args.network_size or args.size)
        nets = {m: bench_network(m, net_clip, args.repeat, args.device, args.half) for m in ("film", "rife")}
        net_line = "; ".join(
            f"{m} {r['ours_s']:.3f}s/{r['bare_s']:.3f}s bare, ratio {r['ratio']:.3f} "
            f"(goal <= {GOAL_NETWORK}) {'PASS' if r['pass'] else 'FAIL'}"
            for m, r in nets.items()
        )
        net_head = f"{len(net_clip)}x{net_clip[0].shape[0]}px on {args.device}{' fp16' if args.half else ''}"
    if args.only_networks:
        report = {"benchmark": "interp-networks", "size": net_clip[0].shape[0], "repeat": args.repeat, **nets}
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"interp networks bench ({net_head}, x2): {net_line} -> {out}")
        return 0
    clip = panned_texture(args.frames, args.size)
    flow = bench_flow(clip, args.repeat)
    mci = bench_mci(clip, args.repeat)
    flow_ok, mci_ok = flow["ratio"] >= GOAL_FLOW, mci["ratio"] <= GOAL_MCI
    report = {
        "benchmark": "interp",
        "frames": args.frames,
        "size": args.size,
        "pan_px_per_frame": PAN,
        "factor": 2,
        "repeat": args.repeat,
        "flow": {**flow, "pass": flow_ok},
        "mci": {**mci, "pass": mci_ok},
    }
    if args.networks:
        report["networks"] = nets
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(
        f"interp bench ({args.frames}x{args.size}px, x2): "
        f"flow {flow['ours_fps']:.2f} fps vs DIS-medium both-ways {flow['dis_both_fps']:.2f} fps, "
        f"ratio {flow['ratio']:.3f} (goal >= {GOAL_FLOW}) {'PASS' if flow_ok else 'FAIL'}; "
        f"mci {mci['ours_s']:.2f}s/{mci['plain_s']:.2f}s plain ffmpeg, "
        f"ratio {mci['ratio']:.3f} (goal <= {GOAL_MCI}) {'PASS' if mci_ok else 'FAIL'}"
        + (f"; networks ({net_head}): {net_line}" if args.networks else "")
        + f" -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
