"""Exceptions raised by the core.

Every error the user can cause is a :class:`VidsdError`; the A1111 layer turns a
:class:`ConfigError` into a 4xx answer naming the field.
"""

from __future__ import annotations

from typing import Any, Iterable


class VidsdError(Exception):
    """Base class of every error vidsd raises on purpose."""


class ConfigError(VidsdError, ValueError):
    """A parameter has a value outside what is allowed.

    ``field`` is the parameter's name as the API spells it, ``value`` what was
    given, ``allowed`` a short description or the list of accepted values.
    """

    def __init__(self, field: str, value: Any, allowed: Any, hint: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        allowed = self.allowed
        if isinstance(allowed, (list, tuple, set, frozenset)):
            allowed = ", ".join(str(a) for a in allowed)
        text = f"{self.field}: got {self.value!r}; allowed: {allowed}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __reduce__(self):  # keep the fields when pickled across processes
        return (type(self), (self.field, self.value, self.allowed, self.hint))


class IncompatibleModelError(VidsdError):
    """A model (motion module, interpolation network) does not fit the one it is used with."""


class MediaError(VidsdError):
    """ffmpeg or an image codec failed; ``stderr`` holds ffmpeg's own words when it ran."""

    def __init__(self, message: str, stderr: str = ""):
        self.stderr = stderr
        if stderr:
            message = f"{message}\nffmpeg said: {stderr.strip()}"
        super().__init__(message)


class EncodeError(MediaError):
    """Writing a video or image sequence failed; no partial output was left behind."""


class DecodeError(MediaError):
    """Reading a video, an animation or a folder of images failed."""


class Interrupted(VidsdError):
    """The user asked to stop; raised between frames, windows or steps."""


def choices_text(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)
