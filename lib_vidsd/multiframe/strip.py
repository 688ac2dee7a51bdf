"""The filmstrip: frames side by side in one image, the mask over the centre cell, the centre cut back out.

A strip is ``[left | centre]`` or ``[left | centre | right]``, every cell ``width × height``, so the
centre cell always spans pixels ``x = width … 2·width − 1``. Rendering the strip with only the centre
masked lets the model see its neighbours (the previous output, the first output…) while it redraws
the current frame, which ties the frames together without any temporal model.

Images are PIL images or ``uint8`` arrays ``(H, W)`` / ``(H, W, C)``; each function returns the kind
it was given.

:func:`side_cells` says which frames fill a strip's side cells; :func:`control_image` builds the
same strip from the *source* frames (what ControlNet units without an image of their own follow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ..config import LoopbackSource, ThirdFrame

Img = TypeVar("Img", Image.Image, np.ndarray)

CENTRE = 1  # index of the cell that is redrawn and cropped out


def _as_array(image: Any, what: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"{what}: expected a PIL image or a uint8 (H, W[, C]) array, got {arr.dtype} {arr.shape}")
    return arr


def build_strip(left: Img, centre: Img, right: Img | None = None) -> Img:
    """``[left | centre | right]`` (``[left | centre]`` when ``right`` is ``None``), cells pasted exactly.

    All cells must have the same size and channels. Returns a PIL image in the centre's mode when
    ``centre`` is a PIL image, else a ``uint8`` array ``(H, cells·W[, C])``.
    """
    cells = [left, centre] + ([] if right is None else [right])
    if isinstance(centre, Image.Image):
        return _paste_strip([c if isinstance(c, Image.Image) else Image.fromarray(c) for c in cells], centre.mode)
    arrays = [_as_array(c, name) for c, name in zip(cells, ("left", "centre", "right")[: len(cells)], strict=True)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"strip cells must have one size, got {sorted(shapes)}")
    return np.concatenate(arrays, axis=1)


def _paste_strip(cells: list[Image.Image], mode: str) -> Image.Image:
    sizes = {c.size for c in cells}
    if len(sizes) != 1:
        raise ValueError(f"strip cells must have one size, got {sorted(sizes)}")
    width, height = cells[0].size
    strip = Image.new(mode, (len(cells) * width, height))
    for i, cell in enumerate(cells):
        strip.paste(cell.convert(mode), (i * width, 0))
    return strip


def strip_mask(width: int, height: int, cells: int, user_mask: Img | None = None) -> Img:
    """The inpaint mask of a strip of ``cells`` cells: white (255) over the centre cell, black elsewhere.

    With ``user_mask`` (``width × height``, grey levels kept) the centre cell is that mask, so only
    its white part of the current frame is redrawn. Returns a PIL ``L`` image when ``user_mask`` is
    a PIL image, else a ``uint8 (height, cells·width)`` array.
    """
    if cells not in (2, 3):
        raise ValueError(f"a strip has 2 or 3 cells, got {cells}")
    mask = np.zeros((height, cells * width), np.uint8)
    if user_mask is None:
        mask[:, CENTRE * width : (CENTRE + 1) * width] = 255
        return mask
    centre = np.asarray(user_mask.convert("L")) if isinstance(user_mask, Image.Image) else _as_array(user_mask, "mask")
    if centre.ndim == 3:
        centre = centre[..., 0]
    if centre.shape != (height, width):
        raise ValueError(f"mask must be {width}x{height}, got {centre.shape[1]}x{centre.shape[0]}")
    mask[:, CENTRE * width : (CENTRE + 1) * width] = centre
    return Image.fromarray(mask) if isinstance(user_mask, Image.Image) else mask


def crop_centre(strip: Img, width: int, height: int) -> Img:
    """The centre cell (pixels ``width … 2·width − 1``) of a rendered strip, exactly; same kind as given."""
    if isinstance(strip, Image.Image):
        if strip.height != height or strip.width < 2 * width:
            raise ValueError(f"strip {strip.width}x{strip.height} holds no {width}x{height} centre cell")
        return strip.crop((CENTRE * width, 0, (CENTRE + 1) * width, height))
    arr = _as_array(strip, "strip")
    if arr.shape[0] != height or arr.shape[1] < 2 * width:
        raise ValueError(f"strip {arr.shape[1]}x{arr.shape[0]} holds no {width}x{height} centre cell")
    return arr[:, CENTRE * width : (CENTRE + 1) * width].copy()


def side_cells(index: int, loopback: LoopbackSource, third: ThirdFrame) -> tuple[int, int | None]:
    """The frames whose images fill the side cells of frame ``index``'s strip (``index`` ≥ 1):
    ``(left, right)``, ``right`` ``None`` when the strip has no third cell.

    Left (the loopback source): the previous frame, the frame itself, or the first frame. Right
    (the third cell): none, the first frame, the frame itself, or the frame two back (the first
    frame while there is no such frame). The job fills these cells with the frames' outputs (or
    the input for the frame itself); :func:`control_image` with their source frames.
    """
    if index < 1:
        raise ValueError(f"frame {index} is rendered alone, not as a strip")
    left = {LoopbackSource.INPUT_FRAME: index, LoopbackSource.FIRST_GEN: 0}.get(loopback, index - 1)
    if third is ThirdFrame.NONE:
        return left, None
    if third is ThirdFrame.ORIGINAL_IMG:
        return left, index
    if third is ThirdFrame.HISTORICAL and index >= 2:
        return left, index - 2
    return left, 0


def control_image(
    index: int, cells: int, loopback: LoopbackSource, third: ThirdFrame, source: Callable[[int], Img]
) -> Img:
    """The control image of frame ``index`` rendered as ``cells`` cells (a ``RenderRequest``'s
    ``index`` and ``cells``): ``source(index)`` for a frame rendered alone (``cells`` 1), else the
    strip ``[source of the loopback cell | source(index) | source of the third cell]``, built
    exactly like the img2img strip (same cells, widths and order; see :func:`side_cells`).
    ``source(i)`` is input frame ``i`` at the generation size.
    """
    if cells == 1:
        return source(index)
    left, right = side_cells(index, loopback, third)
    if cells != (2 if right is None else 3):
        raise ValueError(
            f"frame {index} with third cell {third.value} is a strip of {3 - (right is None)} cells, not {cells}"
        )
    return build_strip(source(left), source(index), None if right is None else source(right))
