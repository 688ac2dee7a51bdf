"""Benchmark: what an injected motion module costs, beside diffusers' UNetMotionModel.

Everything runs on CPU, float32, one thread (``torch.set_num_threads(1)``), random weights.

(a) Forward time at SD1.5 shapes: a diffusers ``UNet2DConditionModel`` with SD1.5's channels
    (320/640/1280/1280, cross-attention 768, 8 heads, 32 groups), 16 frames of one half (no
    cond/uncond batch: 16 rows), 77 context tokens, 8x8 and 16x16 latents (``--sizes``). Four
    variants of the same weights: ``plain`` (the UNet alone), ``ours`` (``inject`` of a
    ``build_motion_module("v2", channels=SD1.5)``), ``ours_disabled`` (the same patch with
    ``enabled = False``) and ``diffusers`` (``UNetMotionModel.from_unet2d`` with a
    ``MotionAdapter`` holding our module's weights under diffusers' names). The diffusers model is
    built on the meta device and its tensors assigned from the UNet and our module, so it shares
    their storage (same numbers, no extra 5 GB); a check asserts every tensor is shared. Inputs:
    ours ``(F, 4, H, W)`` rows with ``(F, 77, 768)`` context; diffusers ``(1, 4, F, H, W)`` with
    the same ``(F, 77, 768)`` context (its pipeline repeats the prompt per frame the same way).
    One untimed round first (warm-up) runs under ``torch.utils.flop_counter.FlopCounterMode``:
    exact matmul/conv/attention FLOP counts (elementwise ops and norms are not counted; CPU's
    ``_scaled_dot_product_flash_attention_for_cpu`` is added with torch's own SDPA formula). Then
    ``--repeat`` rounds call every variant once, in the order plain, ours_disabled, ours,
    diffusers and reversed every other round (ABBA: the pairs with tight goals run back to back);
    the reported ratios are the medians of the per-round ratios. Goals: ours / diffusers <= 1.05;
    FLOPs ours / diffusers within 1%; FLOPs ours / plain expected in 1.35..1.42. (FLOPs of ours
    exceed diffusers' by the time embedding, which the UNet computes per row and diffusers once
    per clip: 15 rows x 4.1 MFLOP.)
(b) From the same rounds: ``ours_disabled / plain`` <= 1.02. What disabling leaves behind is one
    forward hook per temporal site that returns at once (21 for V2; V1 also leaves GroupNorm
    forwards that fall through to the class's). A hook costs about a microsecond, far below the
    noise of a seconds-long call on a shared machine (a tiny UNet's ~50 ms call varies by
    milliseconds here too), so it is also timed alone: hooks per call x one disabled hook's cost
    (``timeit`` on an ``nn.Identity``), divided by the SD1.5 plain call, is checked against 2%.
(c) Peak memory of windowed denoising: ``denoise_windowed`` (context 16, default overlap and
    closed loop, flat fuse, both halves in one call) over a mid-size injected UNet
    (channels 64/128/256/256, cross-attention 64, 77 tokens; ``animatelcm`` module, whose 64-frame
    table lets the all-at-once contrast run up to 64 frames), 8x8 latents, cond and uncond halves.
    Memory is the peak of the bytes held by torch's CPU allocator during the call, above the
    level when the call starts (inputs and weights are already resident): every tensor
    allocation and free is recorded by ``torch.profiler`` (``profile_memory=True``; the raw
    ``[memory]`` events of the Kineto trace, summed in time order). This is exact and free of
    noise, and counts kernel temporaries allocated through ATen; it does not see memory that
    oneDNN/MKL allocate for themselves (small, constant per call). Process RSS was not used:
    glibc keeps freed small blocks, so an RSS high-water mark in one process undercounts later
    cases, and fresh processes add tens of MB of lazy library initialisation to every case.
    Goals: windowed 64 frames <= 1.5 x one 16-frame window call; 256 frames <= 1.10 x 64 frames.
    For contrast, the same UNet called on all frames at once (16/32/64 frames with the module;
    64 and 256 frames of the UNet with the module disabled, as no published module's table holds
    256 frames) grows linearly.
(d) Window bookkeeping: wall time of ``denoise_windowed`` over 64 frames (N = 5 windows, same
    UNet and settings as (c)) divided by the time of N direct model calls on the same windows'
    inputs (sliced beforehand), alternated, median of ``--repeat-windows`` ratios. Goal <= 1.05.
(e) Peak memory while injecting, in a child process (``--child inject-memory``) at SD1.5 size:
    RSS with the UNet and motion module resident (after ``malloc_trim``) is the steady state; the
    RSS high-water mark is reset (``/proc/self/clear_refs``) and read back after ``inject``, then,
    with a ``MotionAdapter`` holding the same weights instead of our module, after
    ``UNetMotionModel.from_unet2d``. Goal: ours peak / steady <= 1.15 (diffusers: reported 1.86).
    Linux only. Needs about 11 GB of memory at its peak (diffusers' copy of both models).

Writes JSON (``--json``, default bench/results/motion.json) with every raw number and the goals,
and prints one summary line. The default run takes about 6 minutes on one core.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib_vidsd.motion import build_motion_module, inject  # noqa: E402
from lib_vidsd.motion.families import to_diffusers_adapter_keys  # noqa: E402
from lib_vidsd.motion.windowed import denoise_windowed  # noqa: E402
from lib_vidsd.pipelines.tiny import build_diffusers_unet  # noqa: E402
from lib_vidsd.schedule.context import context_windows  # noqa: E402

SD15_CHANNELS = (320, 640, 1280, 1280)
SD15_UNET = {
    "block_out_channels": SD15_CHANNELS,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "sample_size": 64,
}
MID_CHANNELS = (64, 128, 256, 256)
MID_UNET = {"block_out_channels": MID_CHANNELS, "cross_attention_dim": 64}
ADAPTER = {
    "block_out_channels": SD15_CHANNELS,
    "motion_layers_per_block": 2,
    "motion_mid_block_layers_per_block": 1,
    "motion_num_attention_heads": 8,
    "motion_norm_num_groups": 32,
    "motion_max_seq_length": 32,
    "use_motion_mid_block": True,
}
TOKENS = 77
TIMESTEP = 500
GOALS = {
    "ours_over_diffusers_time": 1.05,
    "flops_ours_over_diffusers_tolerance": 0.01,
    "flops_ours_over_plain": [1.35, 1.42],
    "disabled_over_plain_time": 1.02,
    "windowed_64_over_window_16_peak": 1.5,
    "windowed_256_over_windowed_64_peak": 1.10,
    "window_bookkeeping_overhead": 1.05,
    "inject_peak_over_steady": 1.15,
    "diffusers_from_unet2d_peak_over_steady_reported": 1.86,
}
MB = 2**20


# --- shared helpers -----------------------------------------------------------------------------


def _adapter_sharing(motion_module):
    """A MotionAdapter whose tensors are ``motion_module``'s own (built on meta, then assigned)."""
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(**ADAPTER)
    adapter.load_state_dict(to_diffusers_adapter_keys(motion_module.state_dict()), strict=True, assign=True)
    return adapter.eval()


def _median_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


# --- (a), (b): forward time and FLOPs at SD1.5 shapes -------------------------------------------


def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    return FlopCounterMode(
        display=False, custom_mapping={aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    )


def _sd15_models():
    """(unet, our motion module, diffusers UNetMotionModel sharing both's tensors), build seconds."""
    from diffusers import UNetMotionModel

    start = time.perf_counter()
    unet = build_diffusers_unet(0, **SD15_UNET)
    motion = build_motion_module("v2", channels=SD15_CHANNELS)
    adapter = _adapter_sharing(motion)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": we assign below
        reference = UNetMotionModel.from_unet2d(unet, adapter)
    state = {**unet.state_dict(), **adapter.state_dict()}
    reference.load_state_dict(state, strict=True, assign=True)
    reference.eval()
    ours_ptrs = {t.data_ptr() for t in state.values()}
    theirs = list(reference.state_dict().values())
    if len(theirs) != len(state) or any(t.is_meta or t.data_ptr() not in ours_ptrs for t in theirs):
        raise RuntimeError("the diffusers model does not share every tensor with the UNet and motion module")
    return unet, motion, reference, time.perf_counter() - start


def _variants(unet, motion, reference, size: int, frames: int):
    """name → (setup context factory, call) for one latent size."""
    g = torch.Generator().manual_seed(size)
    rows = torch.randn(frames, 4, size, size, generator=g)
    context = torch.randn(frames, TOKENS, 768, generator=g)
    sample = rows.view(1, frames, 4, size, size).permute(0, 2, 1, 3, 4).contiguous()  # (B, C, F, H, W)
    t = torch.tensor(TIMESTEP)

    @contextlib.contextmanager
    def injected(enabled: bool):
        with inject(unet, motion, frames=frames) as patch:
            patch.enabled = enabled
            yield

    return {  # in timing order: see bench_forward
        "plain": (contextlib.nullcontext, lambda: unet(rows, t, encoder_hidden_states=context).sample),
        "ours_disabled": (lambda: injected(False), lambda: unet(rows, t, encoder_hidden_states=context).sample),
        "ours": (lambda: injected(True), lambda: unet(rows, t, encoder_hidden_states=context).sample),
        "diffusers": (contextlib.nullcontext, lambda: reference(sample, t, encoder_hidden_states=context).sample),
    }


def bench_forward(unet, motion, reference, size: int, frames: int, repeat: int) -> dict:
    variants = _variants(unet, motion, reference, size, frames)
    names = list(variants)
    flops, times = {}, {n: [] for n in names}
    with torch.no_grad():
        for name in names:  # warm-up round, with the FLOP counter
            setup, call = variants[name]
            with setup(), _flop_counter() as counter:
                call()
            flops[name] = counter.get_total_flops()
        for r in range(repeat):
            # the pairs with tight goals run back to back (plain|disabled, ours|diffusers), and the
            # order reverses every round (ABBA), so drift and a neighbour's load fall on both sides
            for name in names if r % 2 == 0 else names[::-1]:
                setup, call = variants[name]
                with setup():
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
    plain = times["plain"]
    ratios = {f"{n}_over_plain": _median_ratio(times[n], plain) for n in names if n != "plain"}
    ratios["ours_over_diffusers"] = _median_ratio(times["ours"], times["diffusers"])
    return {
        "latent": f"{size}x{size}",
        "rows": frames,
        "times_s": times,
        "median_s": {n: statistics.median(v) for n, v in times.items()},
        "ratios": ratios,
        "flops": flops,
        "flop_ratios": {
            "ours_over_plain": flops["ours"] / flops["plain"],
            "diffusers_over_plain": flops["diffusers"] / flops["plain"],
            "ours_over_diffusers": flops["ours"] / flops["diffusers"],
            "disabled_over_plain": flops["ours_disabled"] / flops["plain"],
        },
    }


def bench_disabled_hook_cost(unet, motion, number: int = 20000, repeat: int = 5) -> dict:
    """What the disabled patch adds to one UNet call: hooks per call x the cost of one disabled hook.

    The hook's cost is timed on an ``nn.Identity`` with and without our hook (``timeit``, best of
    ``repeat``), where it is not lost in the noise of a seconds-long UNet call.
    """
    from lib_vidsd.motion.injection import _temporal_hook, site_names

    probe, x = torch.nn.Identity(), torch.zeros(1)

    def best() -> float:
        return min(timeit.repeat(lambda: probe(x), number=number, repeat=repeat)) / number

    with inject(unet, motion, frames=16) as patch:
        patch.enabled = False
        hooks = len(site_names(patch.layout))
        bare = best()
        handle = probe.register_forward_hook(_temporal_hook(motion.down_blocks[0].motion_modules[0], patch))
        hooked = best()
        handle.remove()
    per_hook = hooked - bare
    return {"hooks_per_call": hooks, "per_hook_us": per_hook * 1e6, "per_call_us": hooks * per_hook * 1e6}


# --- (c), (d): windowed denoising -----------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: Kineto writes a line there at every profiler start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _allocator_peak(fn) -> tuple[int, int]:
    """(peak, net) bytes of torch's CPU allocator during ``fn()``, relative to its start."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak, level


def _mid_setup(halves: int, frames: int):
    g = torch.Generator().manual_seed(frames)
    x = torch.randn(halves * frames, 4, 8, 8, generator=g)
    context = torch.randn(halves * frames, TOKENS, MID_CHANNELS[0], generator=g)
    return x, context


def bench_windowed_memory(unet, patch, halves: int, context_size: int) -> dict:
    t = torch.tensor(TIMESTEP)

    def model_fn(x, context):
        return unet(x, t, encoder_hidden_states=context).sample

    def windowed(frames):
        x, context = _mid_setup(halves, frames)
        return lambda: denoise_windowed(
            model_fn,
            x,
            num_frames=frames,
            context_size=context_size,
            set_frames=patch.set_frames,
            per_row={"context": context},
        )

    def at_once(frames, enabled=True):
        x, context = _mid_setup(halves, frames)

        def call():
            patch.enabled = enabled
            patch.set_frames(min(frames, patch.motion_module.context_limit))
            try:
                model_fn(x, context)
            finally:
                patch.enabled = True

        return call

    cases = {
        "window_call_16": at_once(context_size),
        "windowed_16": windowed(16),
        "windowed_64": windowed(64),
        "windowed_256": windowed(256),
        "at_once_16": at_once(16),
        "at_once_32": at_once(32),
        "at_once_64": at_once(64),
        "at_once_unet_only_64": at_once(64, enabled=False),
        "at_once_unet_only_256": at_once(256, enabled=False),
    }
    out = {}
    with torch.no_grad():
        at_once(context_size)()  # warm-up: first-call initialisation is not a window's cost
        for name, fn in cases.items():
            start = time.perf_counter()
            peak, net = _allocator_peak(fn)
            out[name] = {"peak_bytes": peak, "net_bytes": net, "wall_s_profiled": time.perf_counter() - start}
    peak = {k: v["peak_bytes"] for k, v in out.items()}
    return {
        "cases": out,
        "windows": {f: len(context_windows(0, f, context_size)) for f in (16, 64, 256)},
        "ratios": {
            "windowed_64_over_window_16": peak["windowed_64"] / peak["window_call_16"],
            "windowed_256_over_windowed_64": peak["windowed_256"] / peak["windowed_64"],
            "at_once_32_over_16": peak["at_once_32"] / peak["at_once_16"],
            "at_once_64_over_16": peak["at_once_64"] / peak["at_once_16"],
            "at_once_unet_only_256_over_64": peak["at_once_unet_only_256"] / peak["at_once_unet_only_64"],
        },
    }


def bench_window_overhead(unet, patch, halves: int, frames: int, context_size: int, repeat: int) -> dict:
    t = torch.tensor(TIMESTEP)
    x, context = _mid_setup(halves, frames)
    windows = context_windows(0, frames, context_size)

    def model_fn(xw, context):
        return unet(xw, t, encoder_hidden_states=context).sample

    rows = [torch.tensor([h * frames + f for h in range(halves) for f in w]) for w in windows]
    inputs = [(x.index_select(0, r), context.index_select(0, r), len(w)) for r, w in zip(rows, windows, strict=True)]

    def direct():
        for xw, cw, n in inputs:
            patch.set_frames(n)
            model_fn(xw, cw)

    def windowed():
        denoise_windowed(
            model_fn,
            x,
            num_frames=frames,
            context_size=context_size,
            set_frames=patch.set_frames,
            per_row={"context": context},
        )

    times = {"windowed": [], "direct": []}
    with torch.no_grad():
        direct()  # warm-up
        for r in range(repeat):
            order = [("windowed", windowed), ("direct", direct)]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {
        "frames": frames,
        "windows": len(windows),
        "times_s": times,
        "ratio": _median_ratio(times["windowed"], times["direct"]),
    }


# --- (e): memory while injecting (child process) ---------------------------------------------------


def _proc_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def _steady_rss() -> int:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so RSS is what is resident
    return _proc_status()["VmRSS"]


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def child_inject_memory() -> dict:
    from diffusers import UNetMotionModel

    unet = build_diffusers_unet(0, **SD15_UNET)
    motion = build_motion_module("v2", channels=SD15_CHANNELS)
    ours_steady = _steady_rss()
    _reset_peak()
    patch = inject(unet, motion, frames=16)
    ours_peak = _proc_status()["VmHWM"]
    patch.restore()
    adapter = _adapter_sharing(motion)  # the adapter takes over the module's tensors
    del motion, patch
    theirs_steady = _steady_rss()
    _reset_peak()
    start = time.perf_counter()
    reference = UNetMotionModel.from_unet2d(unet, adapter)
    theirs_s = time.perf_counter() - start
    theirs_peak = _proc_status()["VmHWM"]
    theirs_after = _steady_rss()
    del reference
    return {
        "ours": {"steady_bytes": ours_steady, "peak_bytes": ours_peak, "ratio": ours_peak / ours_steady},
        "diffusers": {
            "steady_bytes": theirs_steady,
            "peak_bytes": theirs_peak,
            "after_bytes": theirs_after,
            "ratio": theirs_peak / theirs_steady,
            "from_unet2d_s": theirs_s,
        },
    }


def bench_inject_memory() -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "inject-memory"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"inject-memory child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------------------


def _checks(report: dict) -> list[dict]:
    checks = []

    def check(name, value, goal, ok):
        checks.append({"name": name, "value": value, "goal": goal, "pass": bool(ok)})

    for size, f in report["forward"].items():
        r, fr = f["ratios"], f["flop_ratios"]
        check(f"time ours/diffusers {size}", r["ours_over_diffusers"], "<= 1.05", r["ours_over_diffusers"] <= 1.05)
        d = fr["ours_over_diffusers"]
        check(
            f"flops ours/diffusers {size}", d, "within 1%", abs(d - 1) <= GOALS["flops_ours_over_diffusers_tolerance"]
        )
        lo, hi = GOALS["flops_ours_over_plain"]
        o = fr["ours_over_plain"]
        check(f"flops ours/plain {size}", o, f"{lo}..{hi}", lo <= o <= hi)
        dis = r["ours_disabled_over_plain"]
        check(f"time disabled/plain {size}", dis, "<= 1.02", dis <= GOALS["disabled_over_plain_time"])
    wm = report["windowed_memory"]["ratios"]
    check(
        "peak windowed 64/window 16",
        wm["windowed_64_over_window_16"],
        "<= 1.5",
        wm["windowed_64_over_window_16"] <= 1.5,
    )
    check(
        "peak windowed 256/64",
        wm["windowed_256_over_windowed_64"],
        "<= 1.10",
        wm["windowed_256_over_windowed_64"] <= 1.10,
    )
    hooks = report["disabled_hook_cost"]
    share = hooks["share_of_sd15_plain_call"]
    check(f"1 + disabled hook cost / SD1.5 call {hooks['sd15_latent']}", 1 + share, "<= 1.02", 1 + share <= 1.02)
    ov = report["window_overhead"]["ratio"]
    check("window bookkeeping", ov, "<= 1.05", ov <= GOALS["window_bookkeeping_overhead"])
    if report.get("inject_memory"):
        im = report["inject_memory"]["ours"]["ratio"]
        check("inject peak/steady", im, "<= 1.15", im <= GOALS["inject_peak_over_steady"])
    return checks


def _summary(report: dict, out: Path) -> str:
    parts = []
    for size, f in report["forward"].items():
        r, fr = f["ratios"], f["flop_ratios"]
        parts.append(
            f"{size}: ours/plain {r['ours_over_plain']:.3f} diffusers/plain {r['diffusers_over_plain']:.3f} "
            f"ours/diffusers {r['ours_over_diffusers']:.3f} disabled/plain {r['ours_disabled_over_plain']:.3f} "
            f"flops ours/plain {fr['ours_over_plain']:.3f} ours/diffusers {fr['ours_over_diffusers']:.4f}"
        )
    wm = report["windowed_memory"]["ratios"]
    parts.append(
        f"peak windowed 64/16 {wm['windowed_64_over_window_16']:.3f} 256/64 {wm['windowed_256_over_windowed_64']:.3f} "
        f"(all at once 64/16 {wm['at_once_64_over_16']:.2f}, unet-only 256/64 {wm['at_once_unet_only_256_over_64']:.2f})"
    )
    hooks = report["disabled_hook_cost"]
    parts.append(
        f"disabled hooks {hooks['hooks_per_call']} x {hooks['per_hook_us']:.1f} us = "
        f"{hooks['share_of_sd15_plain_call']:.0e} of an SD1.5 call"
    )
    parts.append(f"window bookkeeping {report['window_overhead']['ratio']:.3f}")
    if report.get("inject_memory"):
        im = report["inject_memory"]
        parts.append(f"inject peak/steady ours {im['ours']['ratio']:.3f} diffusers {im['diffusers']['ratio']:.3f}")
    failed = [c["name"] for c in report["checks"] if not c["pass"]]
    verdict = f"{len(report['checks']) - len(failed)}/{len(report['checks'])} goals met"
    if failed:
        verdict += " (FAIL: " + ", ".join(failed) + ")"
    return (
        f"motion bench (CPU 1 thread, SD1.5 shapes, {report['frames']} frames x 1 half): "
        + "; ".join(parts)
        + f"; {verdict}; {report['elapsed_s']:.0f}s -> {out}"
    )


def run(args) -> dict:
    start = time.perf_counter()
    report = {
        "benchmark": "motion",
        "frames": args.frames,
        "sizes": args.sizes,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "goals": GOALS,
    }
    report["inject_memory"] = None if args.skip_inject_memory else bench_inject_memory()
    unet, motion, reference, report["build_s"] = _sd15_models()
    report["forward"] = {
        f"{s}x{s}": bench_forward(unet, motion, reference, s, args.frames, args.repeat) for s in args.sizes
    }
    hooks = bench_disabled_hook_cost(unet, motion)
    first = next(iter(report["forward"].values()))  # the smallest latent: the largest share
    hooks["sd15_latent"] = first["latent"]
    hooks["share_of_sd15_plain_call"] = hooks["per_call_us"] * 1e-6 / first["median_s"]["plain"]
    report["disabled_hook_cost"] = hooks
    del unet, motion, reference
    gc.collect()
    mid = build_diffusers_unet(0, **MID_UNET)
    with inject(mid, build_motion_module("animatelcm", channels=MID_CHANNELS), frames=16) as patch:
        report["windowed_memory"] = {
            "unet": {**MID_UNET, "family": "animatelcm", "halves": 2, "latent": "8x8", "context_size": 16},
            **bench_windowed_memory(mid, patch, halves=2, context_size=16),
        }
        report["window_overhead"] = bench_window_overhead(mid, patch, 2, 64, 16, args.repeat_windows)
    report["elapsed_s"] = time.perf_counter() - start
    report["checks"] = _checks(report)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16], help="latent sides for (a) and (b)")
    ap.add_argument("--repeat", type=int, default=4, help="timed rounds per latent size (ABBA: even)")
    ap.add_argument("--repeat-windows", type=int, default=5, help="timed rounds for (d)")
    ap.add_argument("--skip-inject-memory", action="store_true", help="skip (e) (needs ~11 GB, Linux)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "motion.json"))
    ap.add_argument("--child", choices=["inject-memory"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # one line of output: the summary
    if args.child == "inject-memory":
        print(json.dumps(child_inject_memory()))
        return 0
    report = run(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(_summary(report, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
