"""Parameter models: defaults, bounds, errors naming the field, introspection used by CLI and UI."""

from __future__ import annotations

import pytest

from lib_vidsd.config import EncodeOptions, ReadOptions, describe, fps_fraction, validate
from lib_vidsd.errors import ConfigError


def test_every_field_documented():
    for model in (EncodeOptions, ReadOptions):
        for info in describe(model):
            assert info.doc, f"{model.__name__}.{info.name} has no description"


def test_defaults_applied_then_validated():
    opts = validate(EncodeOptions, {"fps": "24000/1001"})
    assert opts.fps == pytest.approx(23.976, abs=1e-3) and opts.loop == 0 and opts.quality == 80
    assert fps_fraction(opts.fps).denominator == 1001


def test_error_names_field_value_and_choices():
    with pytest.raises(ConfigError) as e:
        validate(EncodeOptions, even="odd")
    err = e.value
    assert (err.field, err.value) == ("even", "odd")
    assert str(err) == "even: got 'odd'; allowed: pad, crop, scale"


def test_bounds_in_message():
    with pytest.raises(ConfigError, match=r"quality: got 120; allowed: 0\.\.100"):
        validate(EncodeOptions, quality=120)


def test_unknown_field_lists_known_ones():
    with pytest.raises(ConfigError) as e:
        validate(ReadOptions, evry=2)
    assert e.value.field == "evry" and "every" in str(e.value)


def test_describe_exposes_choices_and_bounds():
    fields = {f.name: f for f in describe(EncodeOptions)}
    assert fields["format"].choices == ("gif", "mp4", "webm", "webp", "apng", "png")
    assert fields["gif_dither"].default == "sierra2_4a"
    assert (fields["crf"].minimum, fields["crf"].maximum) == (0, 63)


def test_config_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(ConfigError("fps", 0, "0..240")))
    assert err.field == "fps" and str(err) == "fps: got 0; allowed: 0..240"


def test_animatediff_api_fields_follow_the_reference():
    from lib_vidsd.config import AnimateDiffParams

    p = validate(AnimateDiffParams, format=["gif", "MP4", "Frame", "gif"], request_id="run 7/../x")
    assert [f.value for f in p.format] == ["GIF", "MP4", "Frame"] and p.request_id == "run7x"
    assert p.video_length == 0 and p.batch_size == 16 and p.overlap == -1 and p.closed_loop.value == "R-P"
    for bad, field in (
        ({"format": ["avi"]}, "format"),
        ({"video_path": "/etc"}, "video_path"),
        ({"interp": "DAIN"}, "interp"),
        ({"batch_size": 8, "overlap": 8}, "overlap"),
    ):
        with pytest.raises(ConfigError) as e:
            validate(AnimateDiffParams, bad)
        assert e.value.field == field
