"""Stands in for ``modules/errors.py``.

The WebUI prints an exception raised by an extension's hook or callback and goes on. ``report``
does that here too, and keeps the five most recent ones in ``exception_records`` (each a dict with
``exception``, the message, and ``traceback``) so that tests can look at them.
"""

import sys
import traceback

exception_records = []


def record_exception():
    """Keep the exception being handled, if any, in ``exception_records``."""
    error = sys.exc_info()[1]
    if error is None:
        return
    frames = traceback.extract_tb(error.__traceback__)
    exception_records.append(
        {
            "exception": str(error),
            "traceback": [[f"{f.filename}, line {f.lineno}, {f.name}", f.line] for f in frames],
        }
    )
    del exception_records[:-5]


def report(message: str, *, exc_info: bool = False) -> None:
    """Print ``message`` (and, with ``exc_info``, the current traceback) to stderr and record it."""
    record_exception()
    text = "".join(f"*** {line}\n" for line in message.splitlines())
    if exc_info:
        text += traceback.format_exc()
    sys.stderr.write(text)
