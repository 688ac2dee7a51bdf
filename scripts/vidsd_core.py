"""Applies the suite's command-line flags (``preload.py``) when A1111 loads the extension.

Only this layer installs a log handler; the core logs under ``vidsd.*`` and stays quiet
when imported elsewhere.
"""

import logging

from modules import shared

from lib_vidsd.errors import VidsdError
from lib_vidsd.video import ffmpeg_exe, set_ffmpeg_path

_HANDLER_NAME = "vidsd-console"


def apply_flags(cmd_opts) -> None:
    set_ffmpeg_path(getattr(cmd_opts, "vidsd_ffmpeg", None))
    logger = logging.getLogger("vidsd")
    logger.setLevel(getattr(cmd_opts, "vidsd_log_level", None) or "INFO")
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):  # scripts reload on "Reload UI"
        handler = logging.StreamHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("[vidsd] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.debug("ffmpeg: %s", ffmpeg_exe())
    except VidsdError as e:  # say it now rather than at the first video
        logger.error("%s", e)


apply_flags(shared.cmd_opts)
