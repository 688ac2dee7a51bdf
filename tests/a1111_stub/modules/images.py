"""Stands in for ``modules/images.py``: ``save_image`` with the WebUI's signature.

With the default settings it names files as the WebUI does, ``<path>/<YYYY-MM-DD>/<NNNNN>-<seed>.png``
(the day folder when ``save_to_dirs``), fires ``before_image_saved`` (which may change the
image, file name and text chunks) and ``image_saved``, stores the infotext in the PNG text chunk
``parameters`` and, with ``opts.save_txt``, in a ``.txt`` file beside it. Filename and folder
patterns, EXIF for JPEG/WEBP and the large-image JPEG copy are not modelled.
"""

from __future__ import annotations

import datetime
import os
import re

from modules import script_callbacks, shared
from PIL import PngImagePlugin


def _next_number(folder, basename):
    """One more than the highest number that starts a file name in ``folder`` (after ``basename-``)."""
    lead = re.compile(re.escape(f"{basename}-" if basename else "") + r"(\d+)")
    found = [int(m.group(1)) for name in os.listdir(folder) if (m := lead.match(name))]
    return max(found, default=-1) + 1


def save_image(
    image,
    path,
    basename,
    seed=None,
    prompt=None,
    extension="png",
    info=None,
    short_filename=False,
    no_prompt=False,
    grid=False,
    pnginfo_section_name="parameters",
    p=None,
    existing_info=None,
    forced_filename=None,
    suffix="",
    save_to_dirs=None,
):
    """Write ``image`` and return ``(fullfn, txt_fullfn)``; ``txt_fullfn`` is None without ``opts.save_txt``."""
    opts = shared.opts
    if save_to_dirs is None:
        save_to_dirs = opts.save_to_dirs and not grid and not no_prompt
    folder = os.path.join(path, datetime.date.today().isoformat()) if save_to_dirs else path
    os.makedirs(folder, exist_ok=True)

    if forced_filename is not None:
        stem = forced_filename
    else:
        number = _next_number(folder, basename)
        stem = f"{basename}-{number:04}" if basename else f"{number:05}"
        if seed is not None and not short_filename:
            stem += f"-{seed}"
        stem += suffix
    texts = dict(existing_info or {})
    if info is not None:
        texts[pnginfo_section_name] = info
    params = script_callbacks.ImageSaveParams(image, p, os.path.join(folder, f"{stem}.{extension}"), texts)
    script_callbacks.before_image_saved_callback(params)

    if params.filename.lower().endswith(".png") and opts.enable_pnginfo:
        chunks = PngImagePlugin.PngInfo()
        for key, value in params.pnginfo.items():
            chunks.add_text(key, str(value))
        params.image.save(params.filename, pnginfo=chunks)
    else:
        params.image.save(params.filename)

    txt_fullfn = None
    info = params.pnginfo.get(pnginfo_section_name)
    if opts.save_txt and info is not None:
        txt_fullfn = os.path.splitext(params.filename)[0] + ".txt"
        with open(txt_fullfn, "w", encoding="utf8") as out:
            out.write(f"{info}\n")
    script_callbacks.image_saved_callback(params)
    return params.filename, txt_fullfn


def get_next_sequence_number(path, basename):
    """The number after the highest ``NNNNN`` that names in ``path`` start with (after
    ``basename-`` when a basename is given); 0 for an empty folder."""
    prefix = f"{basename}-" if basename else ""
    highest = -1
    for name in os.listdir(path):
        if not name.startswith(prefix):
            continue
        head = os.path.splitext(name[len(prefix) :])[0].split("-")[0]
        if head.isdigit():
            highest = max(highest, int(head))
    return highest + 1
