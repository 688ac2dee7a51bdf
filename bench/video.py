"""Benchmark: our video writer/reader against the plain ffmpeg commands doing the same work.

100 frames of 512x512 are encoded to H.264 (crf 23, preset medium) and to GIF (palettegen +
paletteuse), then decoded back to RGB. "Plain" is ffmpeg run directly with the same codec
arguments, reading raw frames from a file and decoding to the null muxer. Each case runs
``--repeat`` times, alternating ours and plain, and the medians are compared.

Writes JSON (``--json``, default bench/results/video.json) and prints one summary line.
Goal: ours / plain <= 1.10.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lib_vidsd.demo import moving_shapes  # noqa: E402
from lib_vidsd.video import ffmpeg_exe, read_video, write_video  # noqa: E402

CASES = {
    "h264": {
        "suffix": ".mp4",
        "ours": {},
        "plain": [
            "-c:v",
            "libx264",
            "-crf",
            "23",
            "-preset",
            "medium",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ],
    },
    "gif": {
        "suffix": ".gif",
        "ours": {},
        "plain": [
            "-filter_complex",
            "[0:v]split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a",
            "-loop",
            "0",
            "-gifflags",
            "-offsetting-transdiff",
            "-f",
            "gif",
        ],
    },
}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _ours(clip, path, fps, options, frames) -> None:
    write_video(clip, path, fps=fps, **options)
    count = sum(1 for _ in read_video(path))
    if count != frames:
        raise RuntimeError(f"read back {count} frames, wrote {frames}")


def _plain(encode, decode) -> None:
    subprocess.run(encode, check=True)
    subprocess.run(decode, check=True)


def run(frames: int, size: int, fps: int, repeat: int) -> dict:
    clip = moving_shapes(frames, size, size)
    exe = ffmpeg_exe()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = tmp / "frames.rgb"
        raw.write_bytes(b"".join(f.tobytes() for f in clip))
        for name, case in CASES.items():
            ours_path = tmp / f"ours{case['suffix']}"
            plain_path = tmp / f"plain{case['suffix']}"
            plain_encode = [
                exe,
                "-hide_banner",
                "-y",
                "-v",
                "error",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-s",
                f"{size}x{size}",
                "-r",
                str(fps),
                "-i",
                str(raw),
                *case["plain"],
                str(plain_path),
            ]
            plain_decode = [
                exe,
                "-hide_banner",
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(plain_path),
                "-map",
                "0:v:0",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-y",
                "/dev/null",
            ]
            ours = functools.partial(_ours, clip, ours_path, fps, case["ours"], frames)
            plain = functools.partial(_plain, plain_encode, plain_decode)
            ours_t, plain_t = [], []
            for _ in range(repeat):
                ours_t.append(_timed(ours))
                plain_t.append(_timed(plain))
            results[name] = {
                "ours_s": statistics.median(ours_t),
                "plain_s": statistics.median(plain_t),
                "ratio": statistics.median(ours_t) / statistics.median(plain_t),
                "ours_all": ours_t,
                "plain_all": plain_t,
                "bytes_ours": ours_path.stat().st_size,
                "bytes_plain": plain_path.stat().st_size,
            }
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--fps", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "video.json"))
    args = ap.parse_args()
    results = run(args.frames, args.size, args.fps, args.repeat)
    report = {
        "benchmark": "video",
        "frames": args.frames,
        "size": args.size,
        "fps": args.fps,
        "repeat": args.repeat,
        "goal_ratio": 1.10,
        "cases": results,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    parts = [f"{k} {v['ours_s']:.2f}s/{v['plain_s']:.2f}s ratio {v['ratio']:.3f}" for k, v in results.items()]
    worst = max(v["ratio"] for v in results.values())
    print(
        f"video bench ({args.frames}x{args.size}px, encode+decode, ours/plain ffmpeg): "
        + "; ".join(parts)
        + f"; worst {worst:.3f} (goal <= 1.10) -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
