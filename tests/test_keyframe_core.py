"""Keyframe-animation core against the Deforum and Giffusion reference fixtures (``../shared``).

Deliberate differences from the anchors (each case is still checked, against our behaviour):

* ``deforum_warp2d/zoom_0``: zoom 0 collapses the frame to a point; we refuse it (``ConfigError``).
* ``deforum_warp2d/flip_zero_angles_zoom_angle``: perspective flip is not part of our 2D motion (the
  anchor's flip drops the translation and is not the identity at zero angles); we check our plain
  zoom/turn instead.
* ``giffusion_transform2d``: our conventions are Deforum's (+angle counter-clockwise, shift before
  zoom, pivot at the true centre). Each case is reproduced by converting Giffusion's values into
  ours (negated angle, shift rotated/scaled back, Giffusion's transposed pivot): the matrix to 1e-5;
  the image within 5 levels (mean <= 0.5) because OpenCV rounds where kornia + ToPILImage truncate.
  The UI's ``"zero"`` padding errors in both. ``reflection`` is our ``reflect``.
* ``deforum_color_coherence``: reproduced byte-exactly; the anchor's arrays are taken as RGB, which
  is what our ``match_colors`` expects (Deforum's render loop passed BGR: the defect we fix).
* ``giffusion_color_match``: reproduced within one level by ``match_colors(..., "lab_float")`` (float
  CIE L*a*b* as Giffusion's kornia pipeline); ``"lab"`` stays Deforum's 8-bit OpenCV match.
* ``giffusion_latents``: per-frame weights come from the schedule package; here the fixture's linear
  and curve weights are rebuilt inline.
* ``giffusion_coherence``: noise comes from a generator we own (seeded like the anchor's global RNG).
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest
import torch

from lib_vidsd.errors import ConfigError
from lib_vidsd.keyframe import (
    LatentCoherence,
    interpolate_keyframes,
    keyframe_noise,
    match_colors,
    seed_schedule,
    slerp,
    warp2d,
    warp_matrix,
)
from tests.rig.fixtures import require_fixture

KEYFRAMES = "keyframes"
# Fixture case ids, listed so each case is its own test (the files are only read inside tests).
DEFORUM_WARP = [
    "identity",
    "zoom_minus_1",
    "zoom_0",
    "angle_10",
    "angle_90_wide_wrap",
    "zoom_then_translate_order",
    "wrap_big_translate",
    "flip_zero_angles_zoom_angle",
]
GIFFUSION_MOTION = [
    "identity",
    "zoom_minus_1",
    "angle_minus_30_wide",
    "angle_90_wide",
    "scheduled_frame_7",
    "ty_6_reflection_wide",
    "padding_zero_ui_value",
]
GIFFUSION_BORDERS = {"border": "replicate", "reflection": "reflect", "zeros": "black"}


@cache
def _load(name: str) -> dict:
    return json.loads(require_fixture(f"{KEYFRAMES}/{name}_public.json").read_text())


def _case(name: str, case_id: str) -> dict:
    cases = {c["id"]: c for c in _load(name)["cases"]}
    return cases[case_id]


def _images(name: str) -> dict[str, np.ndarray]:
    return {k: np.array(v["data"], dtype=np.uint8) for k, v in _load(name)["images"].items()}


def _u8(data: list) -> np.ndarray:
    return np.array(data, dtype=np.uint8)


def _t(data: list) -> torch.Tensor:
    return torch.tensor(data, dtype=torch.float64)


def _all_ids(name: str) -> list[str]:
    return [c["id"] for c in _load(name)["cases"]]


@pytest.mark.parametrize("name", ["deforum_warp2d", "giffusion_transform2d"])
def test_every_public_motion_case_is_listed(name):
    listed = DEFORUM_WARP if name == "deforum_warp2d" else GIFFUSION_MOTION
    assert sorted(_all_ids(name)) == sorted(listed)


# --- 2D motion -------------------------------------------------------------------------------------


def _deforum_motion(values: dict) -> dict:
    return {
        "zoom": values["zoom"],
        "angle": values["angle"],
        "translate_x": values["translation_x"],
        "translate_y": values["translation_y"],
        "pivot": (values["transform_center_x"], values["transform_center_y"]),
    }


@pytest.mark.parametrize("case_id", DEFORUM_WARP)
def test_deforum_warp2d(case_id):
    case = _case("deforum_warp2d", case_id)
    image = _images("deforum_warp2d")[case["image_in"]]
    height, width = image.shape[:2]
    motion = _deforum_motion(case["resolved_values"])
    if case_id == "zoom_0":  # deliberate: the anchor renders a degenerate frame
        with pytest.raises(ConfigError, match="zoom"):
            warp2d(image, border=case["border"], **motion)
        return
    out = warp2d(image, border=case["border"], **motion)
    if case["enable_perspective_flip"]:  # deliberate: no perspective flip; plain motion instead
        assert not np.array_equal(out, _u8(case["result"]["image_out"]))
        assert np.array_equal(out, warp2d(image, border=case["border"], **motion))
        return
    expected_matrix = np.array(case["warpPerspective_call"]["M"])
    np.testing.assert_allclose(warp_matrix(width, height, **motion), expected_matrix, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out, _u8(case["result"]["image_out"]))


def _from_giffusion(values: dict, height: int, width: int) -> dict:
    """Giffusion's motion values in our conventions (turn sign, shift order, transposed pivot)."""
    zoom, angle = values["zoom"], -values["angle"]
    theta = math.radians(angle)
    linear = zoom * np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    shift = np.linalg.solve(linear, [values["translate_x"], values["translate_y"]])
    pivot = ((height / 2) / width, (width / 2) / height)
    return {"zoom": zoom, "angle": angle, "translate_x": shift[0], "translate_y": shift[1], "pivot": pivot}


@pytest.mark.parametrize("case_id", GIFFUSION_MOTION)
def test_giffusion_transform2d_in_our_conventions(case_id):
    case = _case("giffusion_transform2d", case_id)
    image = _images("giffusion_transform2d")[case["image_in"]]
    height, width = image.shape[:2]
    motion = _from_giffusion(case["resolved_values"], height, width)
    border = GIFFUSION_BORDERS.get(case["padding_mode"], case["padding_mode"])
    if case["result"]["status"] == "error":
        with pytest.raises(ConfigError, match="border"):
            warp2d(image, border=border, **motion)
        return
    matrix = warp_matrix(width, height, **motion)
    np.testing.assert_allclose(matrix[:2], np.array(case["affine_M_2x3"][0]), rtol=0, atol=1e-5)
    diff = np.abs(warp2d(image, border=border, **motion).astype(int) - _u8(case["result"]["image_out"]))
    assert diff.max() <= 5 and diff.mean() <= 0.5


def test_motion_conventions_positive_angle_turns_counter_clockwise():
    image = np.zeros((33, 33, 3), dtype=np.uint8)
    image[16, 28] = 255  # a dot right of centre
    out = warp2d(image, zoom=1.0, angle=90, translate_x=0, translate_y=0, pivot=(16 / 33, 16 / 33), border="black")
    y, x = np.argwhere(out[..., 0] == out[..., 0].max())[0]
    assert (y, x) == (4, 16)  # moved up: counter-clockwise on screen


def test_unknown_border_names_choices():
    with pytest.raises(ConfigError, match="replicate"):
        warp2d(np.zeros((4, 4, 3), np.uint8), zoom=1, angle=0, translate_x=0, translate_y=0, border="zero")


# --- slerp and keyframe latents ----------------------------------------------------------------------


def test_giffusion_slerp_cases():
    data = _load("giffusion_slerp")
    for case in data["cases"]:
        dtype = getattr(torch, case["dtype"])
        v0, v1 = _t(case["v0"]).to(dtype), _t(case["v1"]).to(dtype)
        out = slerp(v0, v1, case["t"])
        assert out.dtype == dtype, case["id"]
        tol = 2e-3 if dtype == torch.float16 else 2e-6
        torch.testing.assert_close(out.double(), _t(case["result"]["value"]), rtol=0, atol=tol, msg=case["id"])


def test_slerp_zero_vector_lerps_instead_of_nan():
    zero, one = torch.zeros(4), torch.ones(4)
    torch.testing.assert_close(slerp(zero, one, 0.25), torch.full((4,), 0.25))


def _segment_weights(case: dict):
    if case["interpolation_type"] == "curve":  # keyframed curve read at absolute frames
        pairs = [item.split(":") for item in case["interpolation_args"].split(",")]
        xs = [int(k) for k, _ in pairs]
        ys = [float(v.strip(" ()")) for _, v in pairs]
        return lambda start, end: np.interp(np.arange(start, end + 1), xs, ys)
    return lambda start, end: np.linspace(0, 1, end - start + 1)


@pytest.mark.parametrize("index", range(4))
def test_giffusion_latents(index):
    case = _load("giffusion_latents")["cases"][index]
    keys = [frame for frame, _ in case["key_frames"]]
    assert seed_schedule(case["seed"], case["max_frames"]) == [int(s) for s in case["seed_schedule_decimal_strings"]]
    noise = keyframe_noise(case["seed"], keys, case["latent_shape"], fixed_latent=case["use_fixed_latent"])
    assert torch.equal(noise[0], _t(case["first_keyframe_latent"]).float())
    weights = _segment_weights(case)
    latents = interpolate_keyframes(keys, noise, weights)
    prompts = [_t(case["embeddings_by_prompt"][prompt]).float() for _, prompt in case["key_frames"]]
    embeds = interpolate_keyframes(keys, prompts, weights)
    assert sorted(latents) == sorted(int(f) for f in case["init_latents"])
    for frame, expected in case["init_latents"].items():
        torch.testing.assert_close(latents[int(frame)].double(), _t(expected), rtol=0, atol=1e-6)
        torch.testing.assert_close(embeds[int(frame)].double(), _t(case["prompt_embeddings"][frame]), rtol=0, atol=1e-6)


def test_keyframes_must_increase():
    with pytest.raises(ConfigError, match="key_frames"):
        interpolate_keyframes([0, 5, 5], [torch.zeros(2)] * 3, lambda s, e: np.linspace(0, 1, e - s + 1))


# --- coherence -----------------------------------------------------------------------------------------


def test_giffusion_coherence_cases():
    for case in _load("giffusion_coherence")["cases"]:
        init = case["init_latent"]
        coherence = LatentCoherence(
            case["coherence_scale"],
            case["coherence_alpha"],
            noise_level=case["noise_level"],
            reference=None if init is None else _t(init).float(),
        )
        for step, call in enumerate(case["calls"]):
            coherence.generator = torch.Generator().manual_seed(call["torch_manual_seed"])
            out = coherence(step, _t(call["latents_in"]).float())
            torch.testing.assert_close(out.double(), _t(call["latents_after_call"]), rtol=0, atol=1e-5, msg=case["id"])
            ref = _t(call["init_latent_after_call"])
            torch.testing.assert_close(coherence.reference.double(), ref, rtol=0, atol=1e-5, msg=case["id"])


def test_coherence_every_n_steps_skips_the_others():
    coherence = LatentCoherence(100.0, every=2, reference=torch.zeros(4))
    x = torch.ones(4)
    assert coherence(1, x) is x
    assert torch.all(coherence(2, x) < 1)


# --- colour matching -------------------------------------------------------------------------------


def test_deforum_color_coherence_cases_byte_exact():
    data = _load("deforum_color_coherence")
    images = _images("deforum_color_coherence")
    spaces = {"RGB": "rgb", "HSV": "hsv"}
    for case in data["cases"]:
        space = spaces.get(case["mode"], "lab")  # any other mode takes Deforum's LAB branch
        out = match_colors(images[case["prev_img"]], images[case["color_match_sample"]], space)
        np.testing.assert_array_equal(out, _u8(case["result"]["image_out"]), err_msg=case["id"])


def test_giffusion_color_match_in_float_lab():
    """``lab_float`` is Giffusion's pipeline (float CIE L*a*b*, quantile match, truncation): within one
    level (float32 arithmetic versus kornia's at the truncation boundary); Deforum's 8-bit ``lab``
    differs from it by up to 32 levels on the dark frame, so the two stay separate options."""
    data = _load("giffusion_color_match")
    images = _images("giffusion_color_match")
    for case in data["cases"]:
        out = match_colors(images[case["image"]], images[case["reference_image"]], "lab_float")
        diff = np.abs(out.astype(int) - _u8(case["result"]["image_out"]))
        assert diff.max() <= 1, (case["id"], diff.max())


def test_float_lab_round_trip():
    from lib_vidsd.keyframe.coherence import lab_to_rgb, rgb_to_lab

    rgb = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)) - rgb).max() < 1e-4
    white = rgb_to_lab(np.ones((1, 3), np.float32))[0]
    assert abs(white[0] - 100) < 1e-3 and abs(white[1]) < 1e-2 and abs(white[2]) < 1e-2


def test_color_strength_blends_and_zero_is_identity():
    rng = np.random.default_rng(0)
    image, reference = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(match_colors(image, reference, strength=0.0), image)
    half = match_colors(image, reference, strength=0.5).astype(int)
    full = match_colors(image, reference).astype(int)
    assert np.abs(half - (image.astype(int) + full) / 2).max() <= 1
    with pytest.raises(ConfigError, match="color_space"):
        match_colors(image, reference, "xyz")
