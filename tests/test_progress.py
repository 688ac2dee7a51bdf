"""Progress sinks and stop tokens."""

from __future__ import annotations

import io

import pytest

from lib_vidsd.errors import Interrupted
from lib_vidsd.progress import NeverStop, ProgressSink, StopFlag, StopToken, TextBar, check_stop, null_progress


def test_protocols():
    assert isinstance(null_progress, ProgressSink) and isinstance(TextBar(), ProgressSink)
    assert isinstance(StopFlag(), StopToken) and isinstance(NeverStop(), StopToken)


def test_stop_flag_and_check():
    flag = StopFlag()
    check_stop(flag)
    check_stop(None)
    flag.skip()
    assert flag.skip_requested() and not flag.stop_requested()
    flag.clear_skip()
    assert not flag.skip_requested()
    flag.stop()
    with pytest.raises(Interrupted, match="interrupted at frame 3"):
        check_stop(flag, "at frame 3")


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_text_bar_on_a_log_writes_only_the_end():
    out = io.StringIO()
    bar = TextBar("enc", stream=out, max_rate=1e9)
    for i in range(1, 5):
        bar(i, 4, "x")
    assert out.getvalue() == "enc [" + "#" * 30 + "] 4/4 x\n"


def test_text_bar_on_a_terminal_redraws():
    out = _Tty()
    bar = TextBar("enc", stream=out, width=4, max_rate=1e9)
    bar(1, 2)
    bar(2, 2)
    assert out.getvalue() == "\renc [##--] 1/2\renc [####] 2/2\n"
