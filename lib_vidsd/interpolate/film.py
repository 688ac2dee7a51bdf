"""FILM frame interpolation (Reda et al., "FILM: Frame Interpolation for Large Motion", ECCV 2022).

The network is the PyTorch port of google-research/frame-interpolation by dajes/frame-interpolation-pytorch
(the code behind the ``film_net_fp16.pt`` / ``film_net_fp32.pt`` files Deforum, sd-webui-animatediff and
ComfyUI use), rewritten here with the same module tree, so its tensors load under their published names:

1. image pyramid: ``pyramid_levels`` levels, each a 2×2 average pool of the previous (sizes round down);
2. cascaded features: one ``sub_levels``-deep extractor runs on every pyramid level; level ``i``
   concatenates sub-level ``j`` of pyramid level ``i - j`` for ``j = 0 .. min(i, sub_levels - 1)``;
3. residual flow pyramids both ways, coarse to fine (levels above ``len(flow_filters) - 1`` share one
   estimator), summed into flows that are then scaled by ``dt`` (read from ``x0``) and ``1 - dt``
   (read from ``x1``);
4. backward warping of images and features to time ``dt`` on the finest ``fusion_pyramid_levels`` levels;
5. a U-Net-like decoder (nearest upsampling, 2×2 conv, two 3×3 convs per level) and a 1×1 conv to RGB.

Weight files come in two generations (see the fixtures' README): v1.0.0 (Jan 2023) names the 16
activation-free convs ``<path>.weight`` and its embedded code ignores ``dt`` (always 0.5); v1.0.2
(Nov 2023) names them ``<path>.0.weight`` and honours ``dt``. :func:`load_film` reads either, from the
TorchScript archive (without running its code), a ``.safetensors`` file or a pickled state dict.

Frames between two images follow the callers: on the uniform grid ``k / (N + 1)`` the closest-to-midpoint
schedule of :func:`film_schedule` (what Deforum, sd-webui-animatediff and ComfyUI do); otherwise one direct
call per time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, IncompatibleModelError
from ..safeload import load_tensor_file
from .torchscript import is_torchscript_archive, read_torchscript

log = logging.getLogger("vidsd.interpolate.film")

NAMES_V1_0_0 = "1.0.0"
NAMES_V1_0_2 = "1.0.2"
#: spatial alignment Deforum pads to, and the smallest size the 7-level pyramid accepts
SIZE_MULTIPLE = 64
PAD_CHOICES = ("64", None)
_UNIFORM_TOLERANCE = 1e-6
_COLOURS = 3
_FLOW_CHANNELS = 2
# the activation-free convs whose v1.0.0 names lack the ".0" of v1.0.2
_V1_0_0_BARE_CONV = re.compile(
    r"^(fuse\.convs\.\d+\.0|predict_flow\._predictors?(?:\.\d+)?\._convs\.\d+)\.(weight|bias)$"
)
_IGNORES_DT_CALL = re.compile(r"torch\.full_like\(\s*\w+\s*,\s*0\.5\s*\)")

StateDict = Mapping[str, Tensor]
FilmSource = Union[str, os.PathLike, StateDict]


# --- building blocks ----------------------------------------------------------------------------------


class Conv(nn.Sequential):
    """One convolution kept as child ``0`` (so its tensors are ``<path>.0.weight``, the v1.0.2 names).

    Odd kernels pad ``kernel // 2`` on every side ("same"); the 2×2 kernel pads one pixel at the right
    and bottom only (TensorFlow's "same" for even kernels). ``activate``: LeakyReLU(0.2) afterwards.
    """

    __constants__ = ["pad_right_bottom", "activate"]  # compiled away by torch.jit.script

    def __init__(self, in_channels: int, out_channels: int, kernel: int, activate: bool = True):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2 if kernel % 2 else 0))
        self.pad_right_bottom = kernel % 2 == 0
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.pad_right_bottom:
            x = F.pad(x, [0, 1, 0, 1])
        y = self[0](x)
        if self.activate:
            y = F.leaky_relu(y, 0.2)
        return y


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: ``out[b, :, y, x] = image[b, :, y + flow[b, 1, y, x], x + flow[b, 0, y, x]]``.

    ``image`` ``[B, C, H, W]``, ``flow`` ``[B, 2, H, W]`` in pixels (dx, dy). Bilinear, coordinates
    outside the image clamped to the border (``grid_sample``, ``align_corners=False``: pixel ``x`` is at
    ``(2x + 1) / W - 1``).
    """
    h, w = flow.shape[2], flow.shape[3]
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, dtype=flow.dtype, device=flow.device)
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, dtype=flow.dtype, device=flow.device)
    grid_x = xs[None, None, :] + flow[:, 0] / (w * 0.5)
    grid_y = ys[None, :, None] + flow[:, 1] / (h * 0.5)
    grid = torch.stack([grid_x, grid_y], dim=3)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _upsample_flow(flow: Tensor, like: Tensor) -> Tensor:
    """``flow`` resized bilinearly to ``like``'s height and width, its values doubled (one level finer)."""
    return F.interpolate(2 * flow, size=[like.shape[2], like.shape[3]], mode="bilinear", align_corners=False)


def feature_channels(level: int, filters: int, sub_levels: int) -> int:
    """Channels of the cascaded feature at pyramid ``level``: sub-levels ``0 .. min(level, sub_levels - 1)``."""
    return sum(filters << j for j in range(min(level, sub_levels - 1) + 1))


class SubTreeExtractor(nn.Module):
    """``sub_levels`` blocks of two 3×3 convs (widths ``filters << j``) with 2×2 average pools between."""

    def __init__(self, filters: int, sub_levels: int):
        super().__init__()
        blocks = []
        in_channels = _COLOURS
        for j in range(sub_levels):
            width = filters << j
            blocks.append(nn.Sequential(Conv(in_channels, width, 3), Conv(width, width, 3)))
            in_channels = width
        self.convs = nn.ModuleList(blocks)

    def forward(self, image: Tensor, depth: int) -> List[Tensor]:
        """The first ``depth`` sub-level features of ``image``, finest first."""
        pyramid: List[Tensor] = []
        head = image
        for j, block in enumerate(self.convs):
            if j < depth:
                if j > 0:
                    head = F.avg_pool2d(head, 2, 2)
                head = block(head)
                pyramid.append(head)
        return pyramid


class FeatureExtractor(nn.Module):
    """The cascaded feature pyramid (Trinidad et al., "Multi-view Image Fusion", 2019)."""

    def __init__(self, filters: int, sub_levels: int):
        super().__init__()
        self.extract_sublevels = SubTreeExtractor(filters, sub_levels)
        self.sub_levels = sub_levels

    def forward(self, image_pyramid: List[Tensor]) -> List[Tensor]:
        levels = len(image_pyramid)
        subs = [self.extract_sublevels(image_pyramid[i], min(levels - i, self.sub_levels)) for i in range(levels)]
        pyramid: List[Tensor] = []
        for i in range(levels):
            parts = [subs[i - j][j] for j in range(min(i + 1, self.sub_levels))]
            pyramid.append(torch.cat(parts, dim=1))
        return pyramid


class FlowEstimator(nn.Module):
    """Residual flow from concat(features a, warped features b): ``num_convs`` 3×3 convs of
    ``num_filters``, a 1×1 conv to ``num_filters // 2`` and a 1×1 conv to (dx, dy) with no activation."""

    def __init__(self, in_channels: int, num_convs: int, num_filters: int):
        super().__init__()
        convs = [Conv(in_channels if i == 0 else num_filters, num_filters, 3) for i in range(num_convs)]
        convs.append(Conv(num_filters, num_filters // 2, 1))
        convs.append(Conv(num_filters // 2, _FLOW_CHANNELS, 1, activate=False))
        self._convs = nn.ModuleList(convs)

    def forward(self, features_a: Tensor, features_b: Tensor) -> Tensor:
        net = torch.cat([features_a, features_b], dim=1)
        for conv in self._convs:
            net = conv(net)
        return net


class PyramidFlowEstimator(nn.Module):
    """Coarse-to-fine flow: the coarsest level predicts from scratch; each finer level upsamples the
    running flow, warps ``b``'s features with it and adds a predicted residual (as PWC-Net, SpyNet).

    Levels ``0 .. len(flow_filters) - 2`` have their own estimator (``_predictors``, stored coarsest
    first); every coarser level shares ``_predictor``.
    """

    def __init__(self, filters: int, sub_levels: int, flow_convs: Sequence[int], flow_filters: Sequence[int]):
        super().__init__()
        estimators = [
            FlowEstimator(2 * feature_channels(i, filters, sub_levels), n, width)
            for i, (n, width) in enumerate(zip(flow_convs, flow_filters, strict=True))
        ]
        self._predictor = estimators[-1]
        self._predictors = nn.ModuleList(estimators[:-1][::-1])

    def forward(self, features_a: List[Tensor], features_b: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """(residual flows, summed flows), both ``[B, 2, h, w]`` per level, finest first, in pixels."""
        levels = len(features_a)
        specialised = len(self._predictors)
        flow = self._predictor(features_a[-1], features_b[-1])
        residuals = [flow]
        flows = [flow]
        for i in range(levels - 2, specialised - 1, -1):
            flow = _upsample_flow(flow, features_a[i])
            residual = self._predictor(features_a[i], warp(features_b[i], flow))
            flow = residual + flow
            residuals.insert(0, residual)
            flows.insert(0, flow)
        for k, predictor in enumerate(self._predictors):
            i = specialised - 1 - k
            flow = _upsample_flow(flow, features_a[i])
            residual = predictor(features_a[i], warp(features_b[i], flow))
            flow = residual + flow
            residuals.insert(0, residual)
            flows.insert(0, flow)
        return residuals, flows


def aligned_channels(level: int, filters: int, sub_levels: int) -> int:
    """Channels of one fusion input level: both warped images and features, then both flows."""
    return 2 * (_COLOURS + feature_channels(level, filters, sub_levels) + _FLOW_CHANNELS)


class Fusion(nn.Module):
    """Decoder from the aligned pyramid to RGB. ``convs[k]`` serves level ``stages - 1 - k`` (coarsest
    first): nearest upsampling of the coarser result, a 2×2 conv (no activation), concat with the level's
    input, two 3×3 convs of ``filters << min(level, specialized_levels)``."""

    def __init__(self, stages: int, specialized_levels: int, filters: int, sub_levels: int):
        super().__init__()
        self.output_conv = nn.Conv2d(filters, _COLOURS, kernel_size=1)
        blocks = []
        coarser = aligned_channels(stages, filters, sub_levels)
        for level in range(stages - 1, -1, -1):
            width = filters << min(level, specialized_levels)
            into = aligned_channels(level, filters, sub_levels) + width
            blocks.append(
                nn.ModuleList([Conv(coarser, width, 2, activate=False), Conv(into, width, 3), Conv(width, width, 3)])
            )
            coarser = width
        self.convs = nn.ModuleList(blocks)

    def forward(self, pyramid: List[Tensor]) -> Tensor:
        net = pyramid[-1]
        for k, block in enumerate(self.convs):
            level = pyramid[len(self.convs) - 1 - k]
            net = F.interpolate(net, size=[level.shape[2], level.shape[3]], mode="nearest")
            net = block[0](net)
            net = block[2](block[1](torch.cat([level, net], dim=1)))
        return self.output_conv(net)


def image_pyramid(image: Tensor, levels: int) -> List[Tensor]:
    """``image`` and ``levels - 1`` successive 2×2 average pools of it (sizes rounded down)."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, 2))
    return pyramid


def _check_config(
    pyramid_levels: int,
    fusion_pyramid_levels: int,
    sub_levels: int,
    flow_convs: Sequence[int],
    flow_filters: Sequence[int],
) -> None:
    if len(flow_convs) != len(flow_filters) or not flow_filters:
        raise ConfigError("flow_convs", tuple(flow_convs), f"one count per flow_filters entry {tuple(flow_filters)}")
    if not len(flow_filters) <= pyramid_levels or not 2 <= fusion_pyramid_levels <= pyramid_levels:
        raise ConfigError("pyramid_levels", pyramid_levels, "at least len(flow_filters) and fusion_pyramid_levels")
    if len(flow_filters) < sub_levels:  # the shared estimator needs equally wide features on its levels
        raise ConfigError("sub_levels", sub_levels, f"at most len(flow_filters) = {len(flow_filters)}")


class FILMNet(nn.Module):
    """FILM's ``film_net`` interpolator; constructor defaults are the published "Style"/"L1"/"VGG" ones.

    ``forward(x0, x1, dt)``: ``x0``, ``x1`` ``[B, 3, H, W]`` RGB in 0..1 (8-bit values / 255, no
    linearisation), ``H, W >= 64``; ``dt`` ``[B, 1]`` in 0..1 (0 is ``x0``), same dtype and device.
    Returns ``[B, 3, H, W]``, not clamped. ``ignores_dt=True`` imitates v1.0.0 files: every item is
    computed at ``dt = 0.5``. Parameter names are the v1.0.2 names, so such state dicts load strictly.
    Scriptable with ``torch.jit.script``.
    """

    __constants__ = ["ignores_dt"]  # a constant of the scripted code, as in the v1.0.0 export

    def __init__(
        self,
        pyramid_levels: int = 7,
        fusion_pyramid_levels: int = 5,
        specialized_levels: int = 3,
        sub_levels: int = 4,
        filters: int = 64,
        flow_convs: Sequence[int] = (3, 3, 3, 3),
        flow_filters: Sequence[int] = (32, 64, 128, 256),
        ignores_dt: bool = False,
    ):
        super().__init__()
        _check_config(pyramid_levels, fusion_pyramid_levels, sub_levels, flow_convs, flow_filters)
        self.pyramid_levels = pyramid_levels
        self.fusion_pyramid_levels = fusion_pyramid_levels
        self.ignores_dt = ignores_dt
        self.extract = FeatureExtractor(filters, sub_levels)
        self.predict_flow = PyramidFlowEstimator(filters, sub_levels, flow_convs, flow_filters)
        self.fuse = Fusion(fusion_pyramid_levels - 1, specialized_levels, filters, sub_levels)

    def stages(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Dict[str, List[Tensor]]:
        """Every intermediate result, finest level first: ``image`` (one tensor, the output),
        ``feature_pyramid_x0``, ``forward_residual_flow_pyramid`` / ``backward_…`` (all levels) and
        ``forward_flow_pyramid`` / ``backward_…`` (summed, fusion levels only, before time scaling)."""
        if self.ignores_dt:
            dt = torch.full_like(dt, 0.5)
        keep = self.fusion_pyramid_levels
        images0 = image_pyramid(x0, self.pyramid_levels)
        images1 = image_pyramid(x1, self.pyramid_levels)
        features0 = self.extract(images0)
        features1 = self.extract(images1)
        forward_residuals, forward_flows = self.predict_flow(features0, features1)
        backward_residuals, backward_flows = self.predict_flow(features1, features0)
        time = dt[:, :, None, None]
        aligned: List[Tensor] = []
        for i in range(keep):
            from0 = backward_flows[i] * time  # where the pixel at time dt was in x0
            from1 = forward_flows[i] * (1 - time)  # … and in x1
            warped0 = warp(torch.cat([images0[i], features0[i]], dim=1), from0)
            warped1 = warp(torch.cat([images1[i], features1[i]], dim=1), from1)
            aligned.append(torch.cat([warped0, warped1, from0, from1], dim=1))
        return {
            "image": [self.fuse(aligned)],
            "feature_pyramid_x0": features0,
            "forward_residual_flow_pyramid": forward_residuals,
            "backward_residual_flow_pyramid": backward_residuals,
            "forward_flow_pyramid": forward_flows[:keep],
            "backward_flow_pyramid": backward_flows[:keep],
        }

    def forward(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Tensor:
        return self.stages(x0, x1, dt)["image"][0]


# --- names, generations, configuration ----------------------------------------------------------------


def film_names_version(state_dict: StateDict) -> str:
    """``"1.0.2"`` if ``fuse.convs.0.0.0.weight`` is present, ``"1.0.0"`` if ``fuse.convs.0.0.weight`` is a
    4-D tensor; otherwise :class:`~lib_vidsd.errors.IncompatibleModelError` (not a FILM state dict)."""
    if "fuse.convs.0.0.0.weight" in state_dict:
        return NAMES_V1_0_2
    legacy = state_dict.get("fuse.convs.0.0.weight")
    if legacy is not None and legacy.ndim == 4:
        return NAMES_V1_0_0
    raise IncompatibleModelError(
        "not a FILM film_net state dict: it has neither fuse.convs.0.0.0.weight (v1.0.2 names) nor a 4-D "
        "fuse.convs.0.0.weight (v1.0.0 names)"
    )


def to_current_names(state_dict: StateDict) -> dict[str, Tensor]:
    """The state dict under v1.0.2 names (order kept): v1.0.0's 16 activation-free convs
    (``fuse.convs.<i>.0``, the last ``_convs.<n>`` of each flow estimator) gain a ``.0``."""
    if film_names_version(state_dict) == NAMES_V1_0_2:
        return dict(state_dict)
    return {_V1_0_0_BARE_CONV.sub(r"\1.0.\2", k): v for k, v in state_dict.items()}


def code_ignores_dt(code_texts: Mapping[str, str] | Iterable[str]) -> bool:
    """Whether a TorchScript program (the archive's ``code/`` texts) replaces ``dt`` by 0.5, as the
    v1.0.0 export does with ``torch.full_like(batch_dt, 0.5)``."""
    texts = code_texts.values() if isinstance(code_texts, Mapping) else code_texts
    return any(_IGNORES_DT_CALL.search(text) for text in texts)


def _shape(state_dict: StateDict, key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise IncompatibleModelError(f"not a FILM film_net state dict: {key} is missing")
    return tuple(state_dict[key].shape)


def _count(state_dict: StateDict, pattern: str) -> int:
    """How many consecutive ``i = 0, 1, …`` have ``pattern.format(i)`` in the state dict."""
    n = 0
    while pattern.format(n) in state_dict:
        n += 1
    return n


def film_config_from_state_dict(state_dict: StateDict) -> dict[str, Any]:
    """:class:`FILMNet` constructor arguments read from tensor names and shapes (either generation).

    ``pyramid_levels`` leaves no trace in the weights and is the published 7. ``specialized_levels``
    only caps the decoder widths: the smallest value that explains them is returned.
    """
    sd = to_current_names(state_dict)
    filters = _shape(sd, "extract.extract_sublevels.convs.0.0.0.weight")[0]
    sub_levels = _count(sd, "extract.extract_sublevels.convs.{}.0.0.weight")
    specialised = _count(sd, "predict_flow._predictors.{}._convs.0.0.weight")
    estimators = [f"predict_flow._predictors.{k}" for k in range(specialised - 1, -1, -1)] + ["predict_flow._predictor"]
    flow_filters = tuple(_shape(sd, f"{e}._convs.0.0.weight")[0] for e in estimators)
    flow_convs = tuple(max(0, _count(sd, e + "._convs.{}.0.weight") - 2) for e in estimators)
    stages = max(1, _count(sd, "fuse.convs.{}.1.0.weight"))  # none: _shape below names the missing key
    widths = [_shape(sd, f"fuse.convs.{stages - 1 - level}.1.0.weight")[0] for level in range(stages)]
    mismatch = next((level for level, w in enumerate(widths) if w != filters << level), None)
    return {
        "pyramid_levels": 7,
        "fusion_pyramid_levels": stages + 1,
        "specialized_levels": stages - 1 if mismatch is None else mismatch - 1,
        "sub_levels": sub_levels,
        "filters": filters,
        "flow_convs": flow_convs,
        "flow_filters": flow_filters,
    }


# --- loading ------------------------------------------------------------------------------------------


def _tensors_only(obj: Any, what: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise IncompatibleModelError(f"{what}: expected a mapping of names to tensors, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}


def read_film_file(path: str | os.PathLike) -> tuple[dict[str, Tensor], bool]:
    """(tensors as stored, whether the file's own code ignores ``dt``) of a FILM file.

    A TorchScript archive is read by :func:`~lib_vidsd.interpolate.torchscript.read_torchscript`
    (nothing executed; ``dt`` handling read from its code); ``.safetensors`` by safetensors; anything
    else by ``torch.load(weights_only=True)``. Plain weight files carry no code: ``dt`` is honoured.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("model", str(path), "an existing FILM model file")
    if is_torchscript_archive(path):
        archive = read_torchscript(path)
        return dict(archive.tensors), code_ignores_dt(archive.code)
    obj = load_tensor_file(path, "FILM")
    return _tensors_only(obj, path.name), False


def _check_keys(model: FILMNet, state_dict: StateDict) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {list(state_dict[k].shape)}, model {list(s)}"
        for k, s in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != s
    ]
    parts = [
        f"{len(items)} {label}: {'; '.join(items[:5])}{'; …' if len(items) > 5 else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if items
    ]
    if parts:
        raise IncompatibleModelError("the weights do not fit the FILM film_net layout: " + ", ".join(parts))


def load_film(source: FilmSource, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> FILMNet:
    """A :class:`FILMNet` in eval mode without gradients, holding the weights of ``source``.

    ``source``: a path (TorchScript ``.pt`` archive such as ``film_net_fp16.pt``, ``.safetensors``, or a
    pickled state dict) or a state dict. Names of either generation are accepted; the configuration
    is read from shapes; ``ignores_dt`` is set when an archive's code ignores ``dt`` (v1.0.0 exports),
    never for plain weights. Every parameter must be present with its shape
    (:class:`~lib_vidsd.errors.IncompatibleModelError` lists missing, unexpected and misshapen keys).
    Tensors are cast to ``dtype`` on ``device`` (fp16 files become float32 by default).
    """
    if isinstance(source, Mapping):
        tensors, ignores_dt = _tensors_only(source, "state dict"), False
    else:
        tensors, ignores_dt = read_film_file(source)
    version = film_names_version(tensors)
    tensors = to_current_names(tensors)
    config = film_config_from_state_dict(tensors)
    with torch.device("meta"):
        model = FILMNet(**config, ignores_dt=ignores_dt)
    _check_keys(model, tensors)
    model.load_state_dict({k: v.to(device=device, dtype=dtype, copy=True) for k, v in tensors.items()}, assign=True)
    log.info(
        "FILM weights: %s names, dt %s, filters %d", version, "ignored" if ignores_dt else "used", config["filters"]
    )
    return model.eval().requires_grad_(False)


# --- scheduling and frames ----------------------------------------------------------------------------


def film_schedule(n: int) -> list[tuple[int, int, int, float]]:
    """The model calls that make ``n`` in-betweens, in order: ``(left, right, target, dt)``.

    Frame indices run ``0`` (first image) .. ``n + 1`` (second image); target ``k`` sits at
    ``k / (n + 1)``. Each step takes, among all missing targets and all gaps between available
    neighbours, the one whose relative position in its gap is closest to 0.5 (first minimum, gap-major),
    and calls the model on the gap's ends with ``dt`` = that position. Computed in float32 with
    ``torch.linspace`` like the callers (dajes ``inference.py``, Deforum, ComfyUI): other precisions
    change the order for most ``n`` that are not ``2**k - 1``.
    """
    splits = torch.linspace(0, 1, n + 2, dtype=torch.float32)
    available = [0, n + 1]
    remaining = list(range(1, n + 1))
    calls = []
    while remaining:
        starts = splits[available[:-1]][:, None]
        ends = splits[available[1:]][:, None]
        positions = (splits[remaining][None, :] - starts) / (ends - starts)
        gap, step = divmod(int(torch.argmin((positions - 0.5).abs())), len(remaining))
        left, right, target = available[gap], available[gap + 1], remaining.pop(step)
        calls.append((left, right, target, float(positions[gap, step])))
        available.insert(gap + 1, target)
    return calls


def _is_uniform(ts: Sequence[float]) -> bool:
    n = len(ts)
    return all(abs(t - (k + 1) / (n + 1)) <= _UNIFORM_TOLERANCE for k, t in enumerate(ts))


def _padding(h: int, w: int, pad: Optional[str]) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` zero padding: to multiples of 64, centred (top = total // 2)."""
    if pad not in PAD_CHOICES:
        raise ConfigError("pad", pad, ['"64"', "None"])
    if pad is None:
        if h < SIZE_MULTIPLE or w < SIZE_MULTIPLE:
            raise ConfigError(
                "pad", None, '"64" for frames under 64×64', hint=f"FILM needs at least 64×64 unpadded; got {w}×{h}"
            )
        return (0, 0, 0, 0)
    ph, pw = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
    return (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)


def _model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None) if hasattr(model, "parameters") else None
    return (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)


def film_tensors(
    model: Any, x0: Tensor, x1: Tensor, ts: Sequence[float], *, pad: Optional[str] = "64", batch_size: int = 1
) -> list[Tensor]:
    """Frames at times ``ts`` between ``x0`` and ``x1`` (``[1, 3, H, W]``, 0..1): one clamped ``[1, 3, H, W]`` each.

    ``model(x0, x1, dt)`` is a :class:`FILMNet` or anything called the same way. Uniform ``ts``
    (``k / (N + 1)``) follow :func:`film_schedule`, each call on the two frames bounding its gap, results
    clamped to 0..1 before reuse (as the callers do); other ``ts`` are direct calls between ``x0`` and
    ``x1`` with ``dt = t``, ``batch_size`` at a time. ``pad="64"``: zero padding to multiples of 64,
    centred, cropped afterwards (Deforum); ``None``: frames as they are (ComfyUI; needs 64×64 or more).
    """
    if any(not 0 <= t <= 1 for t in ts):
        raise ConfigError("ts", list(ts), "times from 0 (x0) to 1 (x1)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer of at least 1")
    h, w = x0.shape[2], x0.shape[3]
    left, right, top, bottom = _padding(h, w, pad)
    x0, x1 = F.pad(x0, [left, right, top, bottom]), F.pad(x1, [left, right, top, bottom])
    if _is_uniform(ts):
        frames: list[Optional[Tensor]] = [x0, *([None] * len(ts)), x1]
        for a, b, target, dt in film_schedule(len(ts)):
            frames[target] = model(frames[a], frames[b], x0.new_full((1, 1), dt)).clamp(0, 1)
        out = frames[1:-1]
    else:
        out = []
        for start in range(0, len(ts), batch_size):
            chunk = ts[start : start + batch_size]
            dt = torch.tensor(chunk, dtype=x0.dtype, device=x0.device)[:, None]
            batch = model(x0.expand(len(chunk), -1, -1, -1), x1.expand(len(chunk), -1, -1, -1), dt).clamp(0, 1)
            out.extend(batch.split(1))
    return [f[:, :, top : top + h, left : left + w] for f in out]


def _to_tensor(frame: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigError("frames", getattr(frame, "shape", type(frame).__name__), "uint8 (H, W, 3) RGB arrays")
    x = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1)[None]
    return (x.float() / 255).to(dtype)  # divided in float32, as the callers do before casting to half


def _to_uint8(frame: Tensor) -> np.ndarray:
    # rounded; Deforum truncates ((x * 255).byte()), which darkens by half a level on average
    return (frame[0].permute(1, 2, 0).float() * 255).round().to(torch.uint8).cpu().numpy()


def film_frames(
    model: Any, a: np.ndarray, b: np.ndarray, ts: Sequence[float], *, pad: Optional[str] = "64", batch_size: int = 1
) -> list[np.ndarray]:
    """Frames at times ``ts`` between ``a`` (t=0) and ``b`` (t=1): ``uint8 (H, W, 3)`` RGB in, one out per ``t``.

    Runs on the model's device and dtype under ``torch.inference_mode``; see :func:`film_tensors` for
    the schedule, ``pad`` and ``batch_size``. Values are clamped to 0..1 and rounded to 8 bits.
    """
    device, dtype = _model_device_dtype(model)
    with torch.inference_mode():
        x0, x1 = _to_tensor(a, device, dtype), _to_tensor(b, device, dtype)
        if x0.shape != x1.shape:
            raise ConfigError("frames", f"{a.shape} and {b.shape}", "two frames of the same size")
        return [_to_uint8(f) for f in film_tensors(model, x0, x1, list(ts), pad=pad, batch_size=batch_size)]


def film_run(
    a: np.ndarray, b: np.ndarray, ts: Sequence[float], *, model: FILMNet, pad: Optional[str] = "64"
) -> list[np.ndarray]:
    """The ``"film"`` interpolator of :data:`~lib_vidsd.interpolate.core.METHODS`: :func:`film_frames` with
    ``model`` a :class:`FILMNet` (from :func:`load_film`)."""
    if not isinstance(model, FILMNet):
        raise ConfigError("model", type(model).__name__, "a FILMNet (lib_vidsd.interpolate.film.load_film)")
    return film_frames(model, a, b, ts, pad=pad)
