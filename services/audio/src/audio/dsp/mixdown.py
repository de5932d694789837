"""Block-wise mixdown: tracks read range by range from their files (resampled to the mix rate when
needed), gains, fades, constant-power pan, mono folding of the lows, ducking under key (dialogue)
tracks, loudness normalisation in two passes and a look-ahead peak limiter.

Memory does not grow with duration: every stage works on blocks of ``block_seconds`` and carries
its state (file positions, resampler overlap, filter ``zi``, envelope, limiter history). With
normalisation, pass 1 writes the raw float32 mix to a temporary file while measuring its loudness
(BS.1770), pass 2 reads it back, applies the gain and the limiter and encodes the output.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from numpy.typing import NDArray
from scipy import ndimage, signal

from audio.dsp.codecs import AudioInfo, check_sample_rate, pcm_ceiling, subtype_for, write_audio
from audio.dsp.loudness import LoudnessMeter

FadeCurve = Literal["linear", "exponential", "s_curve"]
FADE_CURVES: tuple[FadeCurve, ...] = ("linear", "exponential", "s_curve")
EXPONENTIAL_K = 4.0  # steepness of the exponential fade: (e^{kt} - 1) / (e^k - 1)
LIMITER_LOOKAHEAD_SECONDS = 0.002
LIMITER_RELEASE_SECONDS = 0.050
DUCKING_FRAME_SECONDS = 0.001  # resolution of the ducking envelope
PASS_ONE_SHARE = 0.6  # share of the progress given to pass 1 when normalising

Block = NDArray[np.float32]


def fade_gain(t: NDArray[np.floating], curve: FadeCurve) -> NDArray[np.float64]:
    """Gain in [0, 1] along a fade-in at positions ``t`` in [0, 1] (clipped): ``linear`` t,
    ``s_curve`` 3t² - 2t³ (smoothstep), ``exponential`` (e^{4t} - 1)/(e^4 - 1) (0.12 at mid).
    A fade-out uses ``fade_gain(1 - t)``."""
    x = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if curve == "linear":
        return x
    if curve == "s_curve":
        return x * x * (3.0 - 2.0 * x)
    if curve == "exponential":
        return np.expm1(EXPONENTIAL_K * x) / math.expm1(EXPONENTIAL_K)
    raise ValueError(f"unknown fade curve {curve!r}; allowed: {', '.join(FADE_CURVES)}")


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law: θ = (pan + 1)·π/4 → (cos θ, sin θ); centre is 0.7071 (-3 dB)."""
    theta = (min(max(pan, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return math.cos(theta), math.sin(theta)


@dataclass(frozen=True)
class MixTrack:
    """One track of a mix. ``trim_end_seconds`` is the time in the source where the used part
    ends (None: its end); a ``key`` track (dialogue) keys the ducking and is never ducked itself;
    ``ducked`` tracks are ducked under the key tracks; ``mono_below_hz`` folds the lows to mono
    (SFX 120 Hz, bass 80 Hz) with a 4th-order Linkwitz-Riley split."""

    path: Path
    volume: float = 1.0
    volume_db: float = 0.0
    pan: float = 0.0
    fade_in_seconds: float = 0.0
    fade_out_seconds: float = 0.0
    fade_curve: FadeCurve = "linear"
    start_time_seconds: float = 0.0
    trim_start_seconds: float = 0.0
    trim_end_seconds: float | None = None
    key: bool = False
    ducked: bool = False
    mono_below_hz: float | None = None

    @property
    def gain(self) -> float:
        """Linear gain: volume x 10^(volume_db / 20)."""
        return float(self.volume * 10.0 ** (self.volume_db / 20.0))


@dataclass(frozen=True)
class Ducking:
    """Sidechain compression of the ducked tracks by the key tracks' level."""

    threshold_db: float = -20.0
    ratio: float = 4.0
    attack_seconds: float = 0.010
    release_seconds: float = 0.050


@dataclass(frozen=True)
class MixSettings:
    """Output of a mix. ``duration_seconds`` None: until the end of the last track;
    ``normalize_lufs`` None: no loudness gain (the limiter still runs)."""

    sample_rate: int = 48000
    channels: int = 2
    duration_seconds: float | None = None
    normalize_lufs: float | None = -16.0
    limiter_dbfs: float = -1.0
    ducking: Ducking | None = Ducking()
    format: str = "wav"
    bit_depth: int = 24


def mono_sum(block: Block) -> Block:
    """The average of the channels of ``block`` ``(frames, channels)``, shape ``(frames,)``
    (column by column: much faster than ``mean(axis=1)`` on a narrow array)."""
    total = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        total += block[:, channel]
    if block.shape[1] > 1:
        total *= np.float32(1.0 / block.shape[1])
    return total


# --- reading -------------------------------------------------------------------------------


class _SourceWindow:
    """Sequential access to the used part of a source file (frames ``[0, length)`` after the
    trim), zero outside it. Requested ranges must not move backwards."""

    def __init__(self, handle: sf.SoundFile, first: int, length: int) -> None:
        self._handle = handle
        self._first = first
        self._length = length
        self._channels = handle.channels
        self._buffer = np.zeros((0, handle.channels), dtype=np.float32)
        self._buffer_start = 0  # used-part index of self._buffer[0]
        self._exhausted = length == 0
        if length > 0 and first > 0:
            handle.seek(first)

    def get(self, start: int, stop: int) -> Block:
        """Frames ``[start, stop)`` of the used part, zeros outside it (read-only: may be a view
        of the buffer)."""
        lo, hi = max(start, 0), min(stop, self._length)
        if hi <= lo:
            return np.zeros((max(stop - start, 0), self._channels), dtype=np.float32)
        have = self._buffer_start + self._buffer.shape[0]  # where the file is positioned
        if lo >= have:  # nothing buffered is needed: skip ahead
            if lo > have and not self._exhausted:
                self._handle.seek(self._first + lo)
            self._buffer = self._buffer[:0]
            self._buffer_start = have = lo
        elif lo > self._buffer_start:  # drop what is no longer needed
            self._buffer = self._buffer[lo - self._buffer_start :]
            self._buffer_start = lo
        if hi > have and not self._exhausted:
            fresh = self._handle.read(hi - have, dtype="float32", always_2d=True)
            if fresh.shape[0] < hi - have:  # the file is shorter than its header said
                self._exhausted = True
            self._buffer = np.concatenate([self._buffer, fresh]) if self._buffer.shape[0] else fresh
        available = self._buffer[lo - self._buffer_start : hi - self._buffer_start]
        if lo == start and available.shape[0] == stop - start:
            return available  # all inside the used part: no copy
        out = np.zeros((stop - start, self._channels), dtype=np.float32)
        out[lo - start : lo - start + available.shape[0]] = available
        return out


class _TrackReader:
    """A track's used part at the mix rate, read range by range. A source at another rate goes
    through a streaming polyphase resampler: each range is resampled from an input window
    aligned on the polyphase period with enough overlap for the FIR, which gives exactly what
    ``scipy.signal.resample_poly`` gives on the whole used part (zeros outside it)."""

    def __init__(self, track: MixTrack, mix_rate: int) -> None:
        self._handle = sf.SoundFile(str(track.path))
        try:
            source_rate = self._handle.samplerate
            total = self._handle.frames
            first = min(round(track.trim_start_seconds * source_rate), total)
            end = total
            if track.trim_end_seconds is not None:
                end = min(round(track.trim_end_seconds * source_rate), total)
            used = max(end - first, 0)
            self.channels = self._handle.channels
            self._window = _SourceWindow(self._handle, first, used)
            ratio = Fraction(mix_rate, source_rate)
            if max(ratio.numerator, ratio.denominator) > 4000:
                ratio = ratio.limit_denominator(1000)
            self._up, self._down = ratio.numerator, ratio.denominator
            self.frames = -(-used * self._up // self._down)  # ceil, as resample_poly
            self._filter: NDArray[np.float64] | None = None
            if self._up != self._down:
                half = 10 * max(self._up, self._down)
                self._filter = signal.firwin(
                    2 * half + 1, 1.0 / max(self._up, self._down), window=("kaiser", 5.0)
                )
                pad = half // self._up + 2  # input frames the FIR reaches on each side
                self._pad = -(-pad // self._down) * self._down  # a multiple of down
        except BaseException:
            self._handle.close()
            raise

    def read(self, start: int, stop: int) -> Block:
        """Frames ``[start, stop)`` of the used part at the mix rate, ``(frames, channels)``."""
        if self._filter is None:
            return self._window.get(start, stop)
        up, down, pad = self._up, self._down, self._pad
        first_period, last_period = start // up, -(-stop // up)
        source_start = first_period * down - pad
        source_stop = last_period * down + pad
        output_base = first_period * up - pad * up // down
        chunk = self._window.get(source_start, source_stop)
        resampled = signal.resample_poly(chunk, up, down, axis=0, window=self._filter)
        return np.asarray(resampled[start - output_base : stop - output_base], dtype=np.float32)

    def close(self) -> None:
        self._handle.close()


# --- per-track processing ------------------------------------------------------------------


def _linkwitz_riley(kind: str, cutoff_hz: float, sample_rate: int) -> NDArray[np.float64]:
    """4th-order Linkwitz-Riley section pair (a squared 2nd-order Butterworth)."""
    edge = min(max(cutoff_hz, 1.0), sample_rate * 0.49)
    sos = signal.butter(2, edge, btype=kind, fs=sample_rate, output="sos")
    return np.concatenate([sos, sos])


def _linkwitz_riley_allpass(cutoff_hz: float, sample_rate: int) -> NDArray[np.float64]:
    """The allpass that an LR4 lowpass and highpass sum to, as one section (bilinear transform
    with the same prewarping as ``butter``)."""
    edge = min(max(cutoff_hz, 1.0), sample_rate * 0.49)
    w = 2.0 * sample_rate * math.tan(math.pi * edge / sample_rate)
    b, a = signal.bilinear(
        [1.0, -math.sqrt(2.0) * w, w * w], [1.0, math.sqrt(2.0) * w, w * w], sample_rate
    )
    return np.concatenate([b, a])[None, :]


class _MonoFold:
    """Fold the lows to mono: lowpass((L + R) / 2) to both sides plus each side's highpass (an
    LR4 crossover, whose halves sum to an allpass). Computed as L' = AP(M) + HP(S),
    R' = AP(M) - HP(S) with M, S = (L +- R) / 2: the same, with fewer filters. Filter state is
    carried between blocks."""

    def __init__(self, cutoff_hz: float, sample_rate: int) -> None:
        self._allpass = _linkwitz_riley_allpass(cutoff_hz, sample_rate)
        self._high = _linkwitz_riley("highpass", cutoff_hz, sample_rate)
        self._allpass_zi = np.zeros((1, 2))
        self._high_zi = np.zeros((self._high.shape[0], 2))

    def __call__(self, stereo: Block) -> Block:
        left, right = stereo[:, 0].astype(np.float64), stereo[:, 1]
        mid, side = (left + right) * 0.5, (left - right) * 0.5
        mid, self._allpass_zi = signal.sosfilt(self._allpass, mid, zi=self._allpass_zi)
        side, self._high_zi = signal.sosfilt(self._high, side, zi=self._high_zi)
        out = np.empty(stereo.shape, dtype=np.float32)
        out[:, 0] = mid + side
        out[:, 1] = mid - side
        return out


class _Track:
    """A track placed on the mix timeline, with its gains and state."""

    def __init__(self, track: MixTrack, settings: MixSettings, ducking: bool) -> None:
        rate = settings.sample_rate
        self.spec = track
        self.reader = _TrackReader(track, rate)
        self.start = round(track.start_time_seconds * rate)
        self.frames = self.reader.frames
        self.end = self.start + self.frames
        self.key = ducking and track.key
        self.ducked = ducking and track.ducked and not track.key
        self.gain = track.gain
        self.fade_in = min(round(track.fade_in_seconds * rate), self.frames)
        self.fade_out = min(round(track.fade_out_seconds * rate), self.frames)
        self.output_channels = settings.channels
        left, right = pan_gains(track.pan)
        if self.reader.channels == 2:  # a balance: unity at centre, +3 dB on the favoured side
            left, right = left * math.sqrt(2.0), right * math.sqrt(2.0)
        self.pan = np.array([left, right], dtype=np.float32)
        self.fold = (
            _MonoFold(track.mono_below_hz, rate)
            if track.mono_below_hz is not None and settings.channels == 2
            else None
        )

    def gains(self, start: int, stop: int) -> NDArray[np.float32] | None:
        """Per-frame fade gains over ``[start, stop)`` of the track (None: no fade there)."""
        fading = start < self.fade_in or stop > self.frames - self.fade_out
        if not fading:
            return None
        index = np.arange(start, stop, dtype=np.float64)
        gain = np.ones(stop - start, dtype=np.float64)
        curve = self.spec.fade_curve
        if self.fade_in > 0 and start < self.fade_in:
            inside = index < self.fade_in
            gain[inside] *= fade_gain(index[inside] / self.fade_in, curve)
        if self.fade_out > 0 and stop > self.frames - self.fade_out:
            begin = self.frames - self.fade_out
            inside = index >= begin
            t = (index[inside] - begin + 1.0) / self.fade_out
            gain[inside] *= fade_gain(1.0 - t, curve)
        return gain.astype(np.float32)

    def render(self, start: int, stop: int) -> tuple[Block, Block | None]:
        """Frames ``[start, stop)`` of the track, after gain, fades, pan and folding, shaped
        ``(frames, output channels)``; and, for a key track, its mono signal after gain and
        fades."""
        source = self.reader.read(start, stop)
        fades = self.gains(start, stop)
        mono: Block | None = None
        if self.key or self.output_channels == 1 or source.shape[1] > 2:
            mono = mono_sum(source) * np.float32(self.gain)
            if fades is not None:
                mono = mono * fades
        if self.output_channels == 1:
            assert mono is not None
            return mono[:, None], mono if self.key else None
        if source.shape[1] > 2:  # more than two channels: downmixed to mono, then panned
            assert mono is not None
            stereo = mono[:, None] * self.pan
        else:
            stereo = source * (self.pan * np.float32(self.gain))
            if fades is not None:
                stereo *= fades[:, None]
        if self.fold is not None:
            stereo = self.fold(stereo)
        return stereo, mono if self.key else None


# --- ducking -------------------------------------------------------------------------------


class Ducker:
    """Gain for the ducked tracks from the key signal (mono sum of the key tracks after their
    gains): frame power over ~1 ms frames, averaged by a one-pole at the attack time (so a rise
    follows the attack), then a release stage (the envelope follows rises at once and falls with
    the release coefficient). Level L dB above the threshold gives a reduction
    (L - threshold)·(1 - 1/ratio) dB, reached at each frame's last sample and interpolated
    linearly in between (so the result does not depend on the block size)."""

    def __init__(self, ducking: Ducking, sample_rate: int) -> None:
        self._settings = ducking
        self.frame = max(1, round(sample_rate * DUCKING_FRAME_SECONDS))
        step = self.frame / sample_rate
        attack = 1.0 - math.exp(-step / max(ducking.attack_seconds, 1e-6))
        self._release = 1.0 - math.exp(-step / max(ducking.release_seconds, 1e-6))
        self._average_b = np.array([attack])
        self._average_a = np.array([1.0, attack - 1.0])
        self._average_zi = np.zeros(1)
        self._envelope = 0.0
        self._previous_db = 0.0  # gain of the previous block's last frame
        self._previous_end = -1.0  # its last frame, relative to the next block

    def gains(self, key: NDArray[np.float32]) -> NDArray[np.float32]:
        """Linear gains for the frames of ``key`` (any length; multiples of ``frame`` keep the
        frame grid regular)."""
        count = key.shape[0]
        frames = -(-count // self.frame)
        squared = np.zeros(frames * self.frame, dtype=np.float64)
        squared[:count] = np.square(key, dtype=np.float64)
        sizes = np.full(frames, float(self.frame))
        sizes[-1] = count - (frames - 1) * self.frame
        power = squared.reshape(frames, self.frame).sum(axis=1) / sizes
        averaged, self._average_zi = signal.lfilter(
            self._average_b, self._average_a, power, zi=self._average_zi
        )
        envelope = np.empty(frames)
        level = self._envelope
        release = self._release
        for i, value in enumerate(averaged.tolist()):
            level = value if value > level else level + release * (value - level)
            envelope[i] = level
        self._envelope = level
        settings = self._settings
        level_db = 10.0 * np.log10(np.maximum(envelope, 1e-20))
        reduction = np.maximum(level_db - settings.threshold_db, 0.0) * (1.0 - 1.0 / settings.ratio)
        ends = np.minimum((np.arange(frames) + 1) * self.frame, count) - 1.0
        gain_db = np.interp(
            np.arange(count, dtype=np.float64),
            np.concatenate([[self._previous_end], ends]),
            np.concatenate([[self._previous_db], -reduction]),
        )
        self._previous_db = float(-reduction[-1])
        self._previous_end = float(ends[-1] - count)
        gains: NDArray[np.float32] = np.power(10.0, gain_db / 20.0).astype(np.float32)
        return gains


# --- limiter -------------------------------------------------------------------------------


class Limiter:
    """Look-ahead peak limiter: the gain needed by each frame (ceiling / peak across channels)
    is held over the look-ahead window (sliding minimum), smoothed by a moving average of the
    same length (the attack ramps over the look-ahead and reaches the needed gain exactly when
    the peak comes out), then released exponentially (deficit 1 - gain decays with
    ``release_seconds``). The output is delayed by ``latency`` frames and hard-clipped at the
    ceiling. State is carried across blocks; ``flush`` returns the last ``latency`` frames."""

    def __init__(
        self,
        ceiling: float,
        sample_rate: int,
        channels: int,
        *,
        lookahead_seconds: float = LIMITER_LOOKAHEAD_SECONDS,
        release_seconds: float = LIMITER_RELEASE_SECONDS,
    ) -> None:
        if ceiling <= 0:
            raise ValueError("the ceiling must be positive")
        self.ceiling = ceiling
        half = max(1, round(lookahead_seconds * sample_rate / 2))
        self.latency = 2 * half  # even, so the sliding minimum's window is centred
        self._decay = 1.0 / max(release_seconds * sample_rate, 1.0)  # log deficit per frame
        self._channels = channels
        self._needed = np.ones(self.latency)  # gain needed by the last `latency` frames
        self._held = np.ones(self.latency)  # sliding minimum of those
        self._log_deficit = -math.inf
        self._delay = np.zeros((self.latency, channels), dtype=np.float32)
        self._idle = True  # no gain reduction pending: blocks under the ceiling pass as they are

    def process(self, block: Block) -> Block:
        """Limit ``block`` ``(frames, channels)``; returns as many frames, delayed by
        ``latency``."""
        count = block.shape[0]
        if count == 0:
            return block
        window = self.latency + 1
        peak = np.abs(block[:, 0])
        for channel in range(1, block.shape[1]):
            peak = np.maximum(peak, np.abs(block[:, channel]))
        delayed = np.concatenate([self._delay, block.astype(np.float32, copy=False)])
        self._delay = delayed[count:]
        if self._idle and float(peak.max()) <= self.ceiling:  # nothing to limit: gain 1
            passed: Block = np.clip(delayed[:count], -self.ceiling, self.ceiling)
            return passed
        peak = peak.astype(np.float64)
        needed = np.minimum(1.0, self.ceiling / np.maximum(peak, 1e-30))
        extended = np.concatenate([self._needed, needed])
        minimum = ndimage.minimum_filter1d(extended, size=window, mode="nearest")
        held = minimum[self.latency // 2 : self.latency // 2 + count]  # window ends at each frame
        self._needed = extended[-self.latency :]
        held_extended = np.concatenate([self._held, held])
        sums = np.concatenate([[0.0], np.cumsum(held_extended)])
        smoothed = (sums[window:] - sums[:-window]) / window
        self._held = held_extended[-self.latency :]
        with np.errstate(divide="ignore"):
            log_deficit = np.log(np.maximum(1.0 - smoothed, 0.0))
        steps = np.arange(count, dtype=np.float64) * self._decay
        released = np.maximum.accumulate(log_deficit + steps) - steps
        released = np.maximum(released, self._log_deficit - steps - self._decay)
        self._log_deficit = float(released[-1])
        if self._log_deficit < -40.0:  # 1 - e^-40 == 1.0 in float64: fully released
            self._log_deficit = -math.inf
        self._idle = (
            self._log_deficit == -math.inf
            and bool(np.all(self._needed == 1.0))
            and bool(np.all(self._held == 1.0))
        )
        gain = 1.0 - np.exp(released)
        out = delayed[:count] * gain[:, None].astype(np.float32)
        clipped: Block = np.clip(out, -self.ceiling, self.ceiling).astype(np.float32, copy=False)
        return clipped

    def flush(self) -> Block:
        """The last ``latency`` frames still held in the delay line."""
        return self.process(np.zeros((self.latency, self._channels), dtype=np.float32))


def limited(blocks: Iterable[Block], limiter: Limiter) -> Iterator[Block]:
    """``blocks`` through ``limiter`` with its latency removed: as many frames out as in."""
    skip = limiter.latency
    for block in blocks:
        out = limiter.process(block)
        cut = min(skip, out.shape[0])
        skip -= cut
        if out.shape[0] > cut:
            yield out[cut:]
    tail = limiter.flush()[skip:]
    if tail.shape[0]:
        yield tail


# --- the mix -------------------------------------------------------------------------------


def _validate(tracks: Sequence[MixTrack], settings: MixSettings, block_seconds: float) -> None:
    if settings.channels not in (1, 2):
        raise ValueError("channels must be 1 (mono) or 2 (stereo)")
    if settings.sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    subtype_for(settings.format, settings.bit_depth)
    check_sample_rate(settings.format, settings.sample_rate)
    if settings.duration_seconds is not None and settings.duration_seconds <= 0:
        raise ValueError("duration_seconds must be positive")
    if block_seconds <= 0:
        raise ValueError("block_seconds must be positive")
    if settings.ducking is not None and settings.ducking.ratio < 1:
        raise ValueError("the ducking ratio must be at least 1")
    for track in tracks:
        if track.volume < 0:
            raise ValueError("volume must not be negative")
        if not -1.0 <= track.pan <= 1.0:
            raise ValueError("pan must be within -1..1")
        if track.fade_curve not in FADE_CURVES:
            raise ValueError(f"unknown fade curve {track.fade_curve!r}")
        if min(track.fade_in_seconds, track.fade_out_seconds, track.start_time_seconds) < 0:
            raise ValueError("fades and start times must not be negative")
        if track.trim_start_seconds < 0:
            raise ValueError("trim_start_seconds must not be negative")
        if track.trim_end_seconds is not None and track.trim_end_seconds < track.trim_start_seconds:
            raise ValueError("trim_end_seconds must not come before trim_start_seconds")
        if track.mono_below_hz is not None and track.mono_below_hz <= 0:
            raise ValueError("mono_below_hz must be positive")


def _mix_blocks(
    placed: list[_Track],
    settings: MixSettings,
    total: int,
    block: int,
    check: Callable[[], None] | None,
    progress: Callable[[float], None] | None,
    share: tuple[float, float],
) -> Iterator[Block]:
    """The raw mix (gains, fades, pan, ducking; no normalisation, no limiter) block by block."""
    channels = settings.channels
    ducker = (
        Ducker(settings.ducking, settings.sample_rate)
        if settings.ducking is not None and any(t.key for t in placed)
        else None
    )
    for begin in range(0, total, block):
        if check is not None:
            check()
        stop = min(begin + block, total)
        size = stop - begin
        main = np.zeros((size, channels), dtype=np.float32)
        ducked = np.zeros((size, channels), dtype=np.float32) if ducker is not None else main
        key = np.zeros(size, dtype=np.float32)
        for track in placed:
            lo, hi = max(begin, track.start), min(stop, track.end)
            if hi <= lo:
                continue
            audio, mono = track.render(lo - track.start, hi - track.start)
            (ducked if track.ducked else main)[lo - begin : hi - begin] += audio
            if mono is not None:
                key[lo - begin : hi - begin] += mono
        if ducker is not None:
            main += ducked * ducker.gains(key)[:, None]
        yield main
        if progress is not None:
            progress(share[0] + (share[1] - share[0]) * stop / total)


def _read_raw(
    path: Path,
    channels: int,
    total: int,
    block: int,
    gain: float,
    check: Callable[[], None] | None,
    progress: Callable[[float], None] | None,
) -> Iterator[Block]:
    """Pass 2: the raw mix back from its float32 file, times ``gain``."""
    with path.open("rb") as handle:
        for begin in range(0, total, block):
            if check is not None:
                check()
            size = min(block, total - begin)
            data = np.fromfile(handle, dtype=np.float32, count=size * channels)
            yield data.reshape(size, channels) * np.float32(gain)
            if progress is not None:
                progress(PASS_ONE_SHARE + (1.0 - PASS_ONE_SHARE) * (begin + size) / total)


def mixdown(
    tracks: Sequence[MixTrack],
    settings: MixSettings,
    out: Path,
    *,
    block_seconds: float = 2.0,
    check: Callable[[], None] | None = None,
    progress: Callable[[float], None] | None = None,
    workdir: Path | None = None,
) -> AudioInfo:
    """Mix ``tracks`` into ``out`` (``settings.format``) and return what was written, measured.

    A track's first used source frame lands at ``round(start_time_seconds * rate)``; fades run
    over the used part. Mono sources pan with constant power; stereo sources get a balance
    (√2·pan gains: unity at centre). A mono output averages each source's channels (pan is
    ignored). ``check`` runs before each block (raise to cancel: the exception propagates and no
    output or temporary file is left); ``progress`` gets 0..1 after each block. The limiter's
    ceiling is ``limiter_dbfs``, lowered to the nearest PCM step for WAV/FLAC so no decoded
    sample exceeds it.
    """
    _validate(tracks, settings, block_seconds)
    rate, channels = settings.sample_rate, settings.channels
    frame = max(1, round(rate * DUCKING_FRAME_SECONDS))
    block = max(frame, round(block_seconds * rate / frame) * frame)
    ceiling = pcm_ceiling(
        10.0 ** (min(settings.limiter_dbfs, 0.0) / 20.0), settings.format, settings.bit_depth
    )
    ducking = settings.ducking is not None and any(t.key for t in tracks)
    with contextlib.ExitStack() as stack:
        placed: list[_Track] = []
        for track in tracks:
            placed.append(_Track(track, settings, ducking))
            stack.callback(placed[-1].reader.close)
        if settings.duration_seconds is not None:
            total = round(settings.duration_seconds * rate)
        else:
            total = max((t.end for t in placed), default=0)
        if total <= 0:
            raise ValueError("nothing to mix: the mix would be empty")
        limiter = Limiter(ceiling, rate, channels)
        try:
            if settings.normalize_lufs is None:
                mixed = _mix_blocks(placed, settings, total, block, check, progress, (0.0, 1.0))
                info = write_audio(
                    limited(mixed, limiter),
                    out,
                    sample_rate=rate,
                    channels=channels,
                    format=settings.format,
                    bit_depth=settings.bit_depth,
                )
            else:
                scratch = stack.enter_context(tempfile.TemporaryDirectory(dir=workdir))
                raw = Path(scratch) / "mix.f32"
                meter = LoudnessMeter(rate, channels)
                share = (0.0, PASS_ONE_SHARE)
                with raw.open("wb") as handle:
                    for part in _mix_blocks(placed, settings, total, block, check, progress, share):
                        meter.add(part)
                        handle.write(part.tobytes())
                loudness = meter.integrated()
                gain = 10.0 ** ((settings.normalize_lufs - loudness) / 20.0)
                if not math.isfinite(loudness):
                    gain = 1.0  # silence: nothing to normalise
                info = write_audio(
                    limited(_read_raw(raw, channels, total, block, gain, check, progress), limiter),
                    out,
                    sample_rate=rate,
                    channels=channels,
                    format=settings.format,
                    bit_depth=settings.bit_depth,
                )
        except BaseException:
            with contextlib.suppress(OSError):
                out.unlink()
            raise
    if progress is not None:
        progress(1.0)
    return info
