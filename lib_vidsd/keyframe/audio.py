"""Audio-driven keyframes: onsets → key frames, and mel energy → interpolation weights (Giffusion).

Both follow Giffusion (``utils.onset_detect`` and ``BYOPFlow.get_interpolation_schedule_from_audio``)
so its fixtures are reproduced; the audio is read mono at 22050 Hz and, for the ``percussive`` or
``harmonic`` component, split by librosa's harmonic/percussive separation with margin 1.0 (``both``
keeps the signal as it is).

* :func:`audio_keyframes`: onsets (librosa ``onset_detect`` at hop 512 with ``wait``, ``pre_avg``,
  ``post_avg``, ``pre_max``, ``post_max`` all 1) become frames ``int(onset_seconds · fps)``, between
  frame 0 and the last frame ``int(duration · fps)``; not sorted nor de-duplicated beyond what the
  onsets give, as in Giffusion.
* :func:`audio_weights`: a weight function (see :mod:`lib_vidsd.schedule.curves`) whose weights follow
  the cumulative mel energy of each segment's audio, so the travel between two prompts moves where
  the sound is loud.

librosa (and through it numba, scipy, soundfile) is imported only when one of these functions runs;
``import lib_vidsd`` stays light. WAV, FLAC and OGG are read by soundfile; anything else (mp3, m4a,
the audio track of a video) is first decoded by ffmpeg to a temporary WAV.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, VidsdError
from ..schedule.curves import WeightFn, linear_weights

log = logging.getLogger("vidsd.keyframe.audio")

SAMPLE_RATE = 22050  # librosa.load's default, which Giffusion uses
ONSET_HOP = 512  # librosa's default hop for onset detection and frames_to_time
HPSS_MARGIN = 1.0
AUDIO_COMPONENTS = ("both", "percussive", "harmonic")
MEL_REDUCE = ("max", "mean", "median")
LIBROSA_PIN = "librosa==0.11.0"

_ALLOWED = "an audio file ffmpeg can read (wav, mp3, flac, ogg, m4a…)"
_SOUNDFILE_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
_REDUCERS = {"max": np.amax, "mean": np.mean, "median": np.median}


def _librosa(field: str):
    """librosa, or a :class:`VidsdError` naming ``field`` and what to install."""
    try:
        import librosa
    except ImportError as e:
        raise VidsdError(
            f"{field}: audio keyframes need librosa, which is not installed: pip install '{LIBROSA_PIN}'"
        ) from e
    return librosa


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """``(samples, sr)``: the file's audio as mono ``float32 (N,)`` in -1…1, resampled to ``sr`` Hz.

    Channels are averaged and the resampling is librosa's (soxr, high quality), as ``librosa.load``
    does. WAV/FLAC/OGG are read by soundfile; other files, or ones soundfile refuses, are decoded by
    ffmpeg (the first audio stream, at its own rate and channels) to a temporary WAV first.

    Raises:
        ConfigError: field ``audio``: no such file, no audio stream, or a file ffmpeg cannot read
            (ffmpeg's words in the hint).
    """
    if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or sr <= 0:
        raise ConfigError("sample_rate", sr, "a whole number of Hz > 0")
    source = Path(path)
    if not source.is_file():
        raise ConfigError("audio", str(source), _ALLOWED, "no such file")
    librosa = _librosa("audio")
    import soundfile

    if source.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            return _load_soundfile(librosa, soundfile, source, sr)
        except soundfile.SoundFileError as e:
            log.debug("soundfile cannot read %s (%s); trying ffmpeg", source, e)
    with tempfile.TemporaryDirectory(prefix="vidsd-audio-") as folder:
        wav = _decode_to_wav(source, Path(folder) / "audio.wav")
        return _load_soundfile(librosa, soundfile, wav, sr)


def _load_soundfile(librosa, soundfile, path: Path, sr: int) -> tuple[np.ndarray, int]:
    # an open SoundFile, not a path: librosa would fall back to the deprecated audioread on failure
    with soundfile.SoundFile(str(path)) as f:
        samples, rate = librosa.load(f, sr=sr, mono=True)
    return samples, int(rate)


def _decode_to_wav(source: Path, wav: Path) -> Path:
    from ..video import ffmpeg

    argv = ["-hide_banner", "-nostdin", "-v", "error", "-i", str(source)]
    argv += ["-map", "0:a:0", "-vn", "-c:a", "pcm_f32le", "-f", "wav", str(wav)]
    out = ffmpeg.run(argv)
    if out.returncode != 0 or not wav.is_file():
        said = ffmpeg.stderr_tail(out.stderr)
        said = "the file has no audio stream" if "matches no streams" in said else ffmpeg.stderr_tail(said, 3)
        raise ConfigError("audio", str(source), _ALLOWED, said or f"ffmpeg failed with exit code {out.returncode}")
    return wav


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps <= SAMPLE_RATE:
        raise ConfigError("fps", fps, f"a frame rate > 0 and at most {SAMPLE_RATE}")
    return fps


def _choice(field: str, value, allowed: tuple[str, ...]) -> str:
    """``value`` (a name or an enum member such as ``config.AudioComponent``) as its plain name."""
    value = getattr(value, "value", value)
    if value not in allowed:
        raise ConfigError(field, value, allowed)
    return value


@contextlib.contextmanager
def _short_input_ok():
    """Audio shorter than one FFT window (2048 samples) is zero-padded, as Giffusion lets librosa do;
    its warning about that is not news to the user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape("n_fft=") + ".*too large", category=UserWarning)
        yield


@functools.lru_cache(maxsize=4)
def _component_cached(path: str, stamp: tuple[int, int], component: str) -> np.ndarray:
    """The component's samples at :data:`SAMPLE_RATE`, read-only; ``stamp`` (mtime, size) keys
    the cache so an edited file is read again."""
    samples, _ = load_audio(path, SAMPLE_RATE)
    if samples.size == 0:
        raise ConfigError("audio", path, _ALLOWED, "the file holds no samples")
    if component != "both":
        harmonic, percussive = _librosa("audio_component").effects.hpss(samples, margin=HPSS_MARGIN)
        samples = harmonic if component == "harmonic" else percussive
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    samples.setflags(write=False)
    return samples


def _component(path: str | os.PathLike, component: str) -> np.ndarray:
    source = Path(path)
    try:
        stat = source.stat()
    except OSError as e:
        raise ConfigError("audio", str(source), _ALLOWED, "no such file") from e
    return _component_cached(str(source.resolve()), (stat.st_mtime_ns, stat.st_size), component)


@dataclass(frozen=True)
class AudioKeyframes:
    """Key frames found in an audio file.

    ``frames[i] = int(times[i] · fps)``; ``times`` are seconds: 0, each onset, then ``duration``
    (the file's length), so ``frames`` starts at 0 and ends at the last frame the audio covers.
    """

    frames: list[int]
    times: list[float]
    duration: float
    fps: float

    def text(self) -> str:
        """One ``frame: timestamp: seconds`` line per key (seconds = frame / fps, two decimals):
        the listing Giffusion's UI shows."""
        return "\n".join(f"{frame}: timestamp: {frame / self.fps:.2f}" for frame in self.frames)


def audio_keyframes(path: str | os.PathLike, fps: float, component: str = "both") -> AudioKeyframes:
    """Key frames at the onsets of the audio in ``path`` (Giffusion's "Get Key Frame Information").

    ``component``: ``both`` (the whole signal), ``percussive`` or ``harmonic``. Onsets come from
    librosa's spectral-flux onset detection at hop 512 with every peak-picking window set to one
    hop; frame = ``int(onset_seconds · fps)``, so two onsets may land on the same frame.

    Raises:
        ConfigError: ``fps`` not a number > 0, ``audio_component`` unknown, ``audio`` unreadable.
    """
    _check_fps(fps)
    component = _choice("audio_component", component, AUDIO_COMPONENTS)
    samples = _component(path, component)
    librosa = _librosa("audio")
    with _short_input_ok():
        onsets = librosa.onset.onset_detect(
            y=samples, sr=SAMPLE_RATE, hop_length=ONSET_HOP, wait=1, pre_avg=1, post_avg=1, pre_max=1, post_max=1
        )
    onset_times = librosa.frames_to_time(onsets, sr=SAMPLE_RATE, hop_length=ONSET_HOP)
    duration = len(samples) / SAMPLE_RATE
    times = [0.0] + [float(t) for t in onset_times] + [duration]
    frames = [0] + [int(t * fps) for t in onset_times] + [int(duration * fps)]
    return AudioKeyframes(frames, times, duration, fps)


def audio_weights(path: str | os.PathLike, fps: float, component: str = "both", reduce: str = "max") -> WeightFn:
    """A weight function ``(start, end) -> end - start + 1`` weights that follow the audio's energy.

    For a segment, the audio from ``int(start/fps · sr)`` up to (not including) ``int(end/fps · sr)``
    gets a mel spectrogram with hop ``sr // fps``; each column is reduced over the mel bins by
    ``reduce`` (max, mean or median), divided by the largest value, summed cumulatively and divided
    by the total, then resampled to the segment's frames with ``np.interp`` from the grid
    ``linspace(0, L, L)`` to ``linspace(0, L, n)``: weights rise where the sound is loud, the last is 1
    and the first is usually above 0 (Giffusion's ``get_interpolation_schedule_from_audio``).

    The audio is read once here; each call computes only its segment's spectrogram.

    Deliberate differences from Giffusion: a segment whose audio is digitally silent (Giffusion gives
    NaN for every frame there), lies past the end of the audio, or is a single frame (an empty slice,
    which Giffusion cannot analyse) gets linear weights ``linspace(0, 1, n)`` instead.

    Raises:
        ConfigError: ``fps``, ``audio_component``, ``audio_reduce`` or ``audio`` invalid; a call
            with ``end < start`` (field ``key_frames``).
    """
    _check_fps(fps)
    component = _choice("audio_component", component, AUDIO_COMPONENTS)
    reduce = _choice("audio_reduce", reduce, MEL_REDUCE)
    samples = _component(path, component)
    librosa = _librosa("audio")

    def weights(start: int, end: int) -> list[float]:
        if end < start:
            raise ConfigError("key_frames", f"{start} → {end}", "increasing key frames")
        return _segment_weights(librosa, samples, start, end, fps, _REDUCERS[reduce])

    return weights


def _segment_weights(librosa, samples: np.ndarray, start: int, end: int, fps: float, reducer) -> list[float]:
    n = end - start + 1
    piece = samples[int((start / fps) * SAMPLE_RATE) : int((end / fps) * SAMPLE_RATE)]
    if piece.size == 0:
        log.debug("segment %d-%d has no audio: linear weights", start, end)
        return linear_weights(start, end)
    with _short_input_ok():
        spec = librosa.feature.melspectrogram(y=piece, sr=SAMPLE_RATE, hop_length=int(SAMPLE_RATE // fps))
    # float32 throughout, as the spectrogram and Giffusion's in-place division leave it
    cumulative = np.cumsum(librosa.util.normalize(reducer(spec, axis=0)))
    if not (np.isfinite(cumulative[-1]) and cumulative[-1] > 0):
        log.debug("segment %d-%d is silent: linear weights", start, end)
        return linear_weights(start, end)
    cumulative /= cumulative[-1]
    length = len(cumulative)
    return np.interp(np.linspace(0, length, n), np.linspace(0, length, length), cumulative).tolist()
