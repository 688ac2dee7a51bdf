"""Video stylisation on a tiny diffusers model: the renderer (strength, smoother, ControlNet, references,
restore after errors), a whole job, and ``python -m lib_vidsd stylize CONFIG.json``."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib_vidsd.config import GenerationParams, StylizeParams, validate
from lib_vidsd.errors import ConfigError
from lib_vidsd.patching import is_patched
from lib_vidsd.pipelines.stylize import (
    ControlNetUnit,
    StylizeRenderer,
    control_image,
    run_stylize,
    run_stylize_config,
)
from lib_vidsd.video import probe, write_video

REPO = Path(__file__).resolve().parents[1]
N, SIZE = 4, 64


@pytest.fixture(scope="module")
def sd():
    torch.set_num_threads(1)
    from lib_vidsd.pipelines.animate import load_sd

    return load_sd(None)


def _frames(n: int = N) -> list[np.ndarray]:
    """A gradient moving right, so neighbouring frames are alike."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return [
        np.stack([(xx * 4 + 6 * i) % 256, yy * 4 % 256, (xx * 2 + yy * 2) % 256], -1).astype(np.uint8) for i in range(n)
    ]


def _gen(**kw) -> GenerationParams:
    base = {"width": SIZE, "height": SIZE, "steps": 3, "seed": 5, "cfg_scale": 4.0, "denoising_strength": 1.0}
    return validate(GenerationParams, {**base, **kw})


def _params(**kw) -> StylizeParams:
    base = {"combine_pattern": "-10000, -1, 0", "chunk_size": 2, "smoother": "none", "post_deflicker": "none"}
    return validate(StylizeParams, {**base, **kw})


def _no_patch_left(*modules) -> bool:
    return all(not is_patched(m) and not any("forward" in vars(x) for x in m.modules()) for m in modules)


def _differ(a, b) -> float:
    return float(np.mean([np.abs(x.astype(float) - y).mean() for x, y in zip(a, b, strict=True)]))


def test_strength_and_smoother_change_the_output(sd):
    frames = _frames()
    full = StylizeRenderer(sd, _gen(), _params()).render(frames)
    assert len(full) == N and all(f.shape == (SIZE, SIZE, 3) and f.dtype == np.uint8 for f in full)
    again = StylizeRenderer(sd, _gen(), _params()).render(frames)
    assert _differ(full, again) == 0  # deterministic for a seed
    half = StylizeRenderer(sd, _gen(denoising_strength=0.5), _params()).render(frames)
    assert _differ(full, half) > 1
    smoothed = StylizeRenderer(sd, _gen(), _params(smoother="fast", smoother_interval=1, smoother_window=2)).render(
        frames
    )
    assert _differ(full, smoothed) > 0.5
    per_frame = StylizeRenderer(sd, _gen(), _params(fixed_noise=False)).render(frames)
    assert _differ(full, per_frame) > 1
    assert _no_patch_left(sd.unet)


def test_chunk_size_does_not_change_a_causal_pattern(sd):
    frames = _frames()
    a = StylizeRenderer(sd, _gen(steps=2), _params(chunk_size=1)).render(frames)
    b = StylizeRenderer(sd, _gen(steps=2), _params(chunk_size=4)).render(frames)
    assert _differ(a, b) < 0.05  # the same up to float rounding (uint8 after decoding)


def test_references_and_controlnet(sd):
    from diffusers import ControlNetModel

    from lib_vidsd.pipelines.seeding import perturb_trivial_parameters

    net = ControlNetModel.from_unet(sd.unet).eval().requires_grad_(False)
    perturb_trivial_parameters(net, 3)  # the zero convolutions would hide the net's effect
    frames = _frames()
    base = StylizeRenderer(sd, _gen(steps=2), _params()).render(frames)
    controlled = StylizeRenderer(sd, _gen(steps=2), _params(), [ControlNetUnit(net, "canny", 1.0)]).render(frames)
    assert _differ(base, controlled) > 0.5
    assert _no_patch_left(sd.unet, net)
    from lib_vidsd.stylize import decode_references

    outputs = []
    for colour in ((250, 20, 20), (20, 20, 250)):
        buffer = io.BytesIO()
        Image.fromarray(np.full((SIZE, SIZE, 3), colour, np.uint8)).save(buffer, format="PNG")
        image = base64.b64encode(buffer.getvalue()).decode()
        params = _params(combine_pattern="reference_0, -1, 0", reference_images=[image])
        renderer = StylizeRenderer(sd, _gen(steps=2), params)
        outputs.append(renderer.render(frames, decode_references(params, (SIZE, SIZE))))
    # the tiny random UNet's attention moves the pixels little, but the reference does reach every frame
    assert _differ(base, outputs[0]) > 0.01 and _differ(outputs[0], outputs[1]) > 0.01
    assert all(not np.array_equal(a, b) for a, b in zip(outputs[0], outputs[1], strict=True))
    assert _no_patch_left(sd.unet)


def test_control_images():
    frame = np.zeros((SIZE, SIZE, 3), np.uint8)
    frame[16:48, 16:48] = 255
    assert control_image(frame, "tile") is frame
    edges = control_image(frame, "canny")
    assert edges.shape == frame.shape and set(np.unique(edges)) == {0, 255}
    ys, xs = np.nonzero(edges[:, :, 0])
    assert ys.min() in (15, 16) and ys.max() in (47, 48) and edges[24:40, 24:40].max() == 0  # the square's outline
    with pytest.raises(ConfigError, match="controlnet_processor"):
        control_image(frame, "depth")


def test_unet_restored_after_an_error_mid_run(sd):
    calls = {"n": 0}

    def progress(done, total, text=""):
        calls["n"] += 1
        raise RuntimeError("boom")

    renderer = StylizeRenderer(sd, _gen(), _params(), progress=progress)
    with pytest.raises(RuntimeError, match="boom"):
        renderer.render(_frames())
    assert calls["n"] == 1 and _no_patch_left(sd.unet)

    class Flag:
        def __init__(self):
            self.asked = 0

        def stop_requested(self):
            self.asked += 1
            return self.asked > 1  # stop at the second step

        def skip_requested(self):
            return False

    from lib_vidsd.errors import Interrupted

    with pytest.raises(Interrupted):
        StylizeRenderer(sd, _gen(), _params(), stop=Flag()).render(_frames())
    assert _no_patch_left(sd.unet)


def test_a_whole_job_from_a_video(sd, tmp_path):
    video = write_video(_frames(5), tmp_path / "in.mp4", fps=10, crf=10)
    params = _params(max_frames=4, post_deflicker="fast", post_window=2, format=["mp4"])
    result = run_stylize(sd, _gen(seed=-1), params, tmp_path / "out", video_path=video)
    assert len(result.frame_paths) == 4 and result.fps == 10
    assert probe(result.videos[0]).frame_count == 4
    with Image.open(result.frame_paths[0]) as img:
        assert "Video stylisation: " in img.info["parameters"] and "Seed: " in img.info["parameters"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".") or p.suffix == ".part"]


# --- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from lib_vidsd.pipelines.tiny import build_sd_pipeline

    path = tmp_path_factory.mktemp("model") / "tiny"
    build_sd_pipeline(seed=0).save_pretrained(path)
    return path


def _config(tmp_path: Path, model_dir: Path) -> dict:
    video = write_video(_frames(3), tmp_path / "in.mp4", fps=8, crf=10)
    return {
        "controlnet_model_id": [],
        "controlnet_processor": [],
        "controlnet_scale": [],
        "smoother": "PySynthSmoother",
        "smoother_config": {"gpu_id": 0, "speed": "fastest", "window_size": 2, "postprocessing": {"contrast": 1.2}},
        "model_id": str(model_dir),
        "input_video": str(video),
        "frame_height": SIZE,
        "frame_width": SIZE,
        "frame_interval": 1,
        "frame_maximum_count": 3,
        "prompt": "winter, snow",
        "negative_prompt": "",
        "frames_reference": [],
        "num_inference_steps": 2,
        "seed_of_noise": 0,
        "combine_pattern": [-10000, -1, 0, 1],
        "img2img_strength": 0.5,
        "ignore_smoother_steps": 1,
        "smoother_interval": 1,
        "output_path": str(tmp_path / "output_video"),
        "post_smoother": "PySynthSmoother",
        "post_smoother_config": {"gpu_id": 0, "speed": "slowest", "window_size": 2},
    }


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "lib_vidsd", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_cli_runs_a_diffsynth_config(tmp_path, model_dir):
    config = _config(tmp_path, model_dir)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = _cli("stylize", str(path), "--device", "cpu", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "output_video"
    assert sorted(p.name for p in folder.glob("frame_*.png")) == [f"frame_{i:05d}.png" for i in range(3)]
    assert probe(folder / "output_video.mp4").frame_count == 3
    effective = json.loads((folder / "config.json").read_text())
    assert effective["prompt"] == "winter, snow" and effective["vidsd"]["generation"]["seed"] == 0
    assert effective["vidsd"]["stylize"]["smoother"] == "fast" and effective["vidsd"]["frames"] == 3
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_cli_bad_configs_exit_2(tmp_path, model_dir):
    config = {**_config(tmp_path, model_dir), "colour": "blue"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    out = _cli("stylize", str(path), cwd=tmp_path)
    assert out.returncode == 2 and "colour" in out.stderr and "known keys" in out.stderr
    config.pop("colour")
    path.write_text(json.dumps({**config, "model_id": "runwayml/stable-diffusion-v1-5"}))
    out = _cli("stylize", str(path), cwd=tmp_path)
    assert out.returncode == 2 and "model_id" in out.stderr and "local model paths only" in out.stderr


def test_run_stylize_config_in_process_with_a_controlnet(tmp_path, model_dir):
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    ControlNetModel.from_unet(unet).save_pretrained(tmp_path / "cn")
    config = {
        **_config(tmp_path, model_dir),
        "controlnet_model_id": [str(tmp_path / "cn")],
        "controlnet_processor": ["ControlnetImageProcesserTile"],
        "controlnet_scale": [0.8],
        "smoother": None,
        "post_smoother": None,
        "format": "gif",
    }
    result, out_dir = run_stylize_config(config, output=tmp_path / "x", device="cpu")
    assert len(result.frame_paths) == 3 and [v.suffix for v in result.videos] == [".gif"]
    assert json.loads((out_dir / "config.json").read_text())["vidsd"]["controlnet_processors"] == ["tile"]
