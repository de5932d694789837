"""The mix engine (audio.dsp.mixdown) and the streaming loudness meter, on short real files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from numpy.typing import NDArray
from scipy import signal

from audio.dsp.loudness import LoudnessMeter
from audio.dsp.mixdown import (
    Ducking,
    FadeCurve,
    Limiter,
    MixSettings,
    MixTrack,
    fade_gain,
    mixdown,
    pan_gains,
)

RATE = 48000
CEILING = 10 ** (-1 / 20)
RAW = MixSettings(normalize_lufs=None, ducking=None)  # no gain; the limiter stays idle < -1 dBFS


def write(path: Path, data: NDArray[np.floating], rate: int = RATE) -> Path:
    """A float WAV: the samples come back exactly."""
    sf.write(str(path), np.asarray(data, dtype=np.float32), rate, subtype="FLOAT")
    return path


def read(path: Path) -> NDArray[np.float64]:
    data, _ = sf.read(str(path), always_2d=True)
    return np.asarray(data)


def sine(freq: float, seconds: float, amplitude: float, rate: int = RATE) -> NDArray[np.float64]:
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def rms_db(x: NDArray[np.floating]) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


def music(seconds: float, seed: int, rate: int = RATE) -> NDArray[np.float64]:
    """Something programme-like: a chord with a beat, a bass line, hiss; stereo."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (220.0, 277.2, 329.6))
    beat = 0.6 + 0.4 * np.abs(np.sin(np.pi * 2 * t))
    bass = 0.8 * np.sin(2 * np.pi * 55 * t) * (0.5 + 0.5 * np.sin(np.pi * 0.5 * t))
    left = 0.12 * chord * beat + 0.15 * bass + 0.02 * rng.standard_normal(t.size)
    right = 0.10 * chord * beat + 0.15 * bass + 0.02 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1)


# --- curves and laws -----------------------------------------------------------------------


def test_fade_curves() -> None:
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert fade_gain(t, "linear") == pytest.approx(t)
    assert fade_gain(t, "s_curve") == pytest.approx(3 * t**2 - 2 * t**3)
    assert fade_gain(t, "s_curve")[2] == pytest.approx(0.5)
    expo = fade_gain(t, "exponential")
    assert expo == pytest.approx(np.expm1(4 * t) / np.expm1(4))
    assert expo[0] == 0
    assert expo[-1] == pytest.approx(1.0)
    assert expo[2] < 0.3
    assert np.all(np.diff(expo) > 0)
    with pytest.raises(ValueError, match="fade curve"):
        fade_gain(t, "cubic")  # type: ignore[arg-type]


def test_pan_law() -> None:
    left, right = pan_gains(0.0)
    assert left == pytest.approx(math.sqrt(0.5))
    assert right == pytest.approx(math.sqrt(0.5))
    assert pan_gains(-1.0) == pytest.approx((1.0, 0.0))
    assert pan_gains(1.0) == pytest.approx((0.0, 1.0))
    for pan in np.linspace(-1, 1, 9):
        left, right = pan_gains(float(pan))
        assert left**2 + right**2 == pytest.approx(1.0)


# --- placement -----------------------------------------------------------------------------


def test_offsets_are_sample_accurate(tmp_path: Path) -> None:
    impulse = np.zeros(RATE // 2)
    impulse[0] = 0.5
    source = write(tmp_path / "impulse.wav", impulse)
    starts = (0.123456, 0.5000104, 0.0)
    tracks = [MixTrack(path=source, start_time_seconds=s, pan=-1.0) for s in starts]
    info = mixdown(tracks, RAW, tmp_path / "out.wav")
    out = read(tmp_path / "out.wav")
    expected = sorted(round(s * RATE) for s in starts)
    assert expected[1] == 5926  # 5925.888 rounds up
    hits = np.flatnonzero(np.abs(out[:, 0]) > 0.25)
    assert hits.tolist() == expected
    assert out[hits, 0] == pytest.approx(0.5, abs=1e-6)
    assert np.max(np.abs(out[:, 1])) < 1e-7  # hard left
    assert info.frames == out.shape[0] == round(0.5000104 * RATE) + RATE // 2


def test_trims_cut_the_right_samples(tmp_path: Path) -> None:
    ramp = np.arange(RATE, dtype=np.float64) / RATE * 0.8
    source = write(tmp_path / "ramp.wav", np.stack([ramp, -ramp], axis=1))
    track = MixTrack(
        path=source, start_time_seconds=0.1, trim_start_seconds=0.25, trim_end_seconds=0.5
    )
    mixdown([track], RAW, tmp_path / "out.wav")
    out = read(tmp_path / "out.wav")
    start, first, last = round(0.1 * RATE), round(0.25 * RATE), round(0.5 * RATE)
    assert out.shape == (start + last - first, 2)
    assert np.all(out[:start] == 0)
    np.testing.assert_allclose(out[start:, 0], ramp[first:last], atol=2e-7)  # 24-bit steps
    np.testing.assert_allclose(out[start:, 1], -ramp[first:last], atol=2e-7)


def test_duration_cuts_and_pads(tmp_path: Path) -> None:
    source = write(tmp_path / "dc.wav", np.full(RATE, 0.25))
    settings = MixSettings(normalize_lufs=None, ducking=None, duration_seconds=1.5)
    mixdown([MixTrack(path=source, start_time_seconds=1.0)], settings, tmp_path / "out.wav")
    out = read(tmp_path / "out.wav")
    assert out.shape[0] == round(1.5 * RATE)
    assert np.all(out[: RATE - 1] == 0)
    assert out[RATE:, 0] == pytest.approx(0.25 * math.sqrt(0.5), abs=1e-6)


@pytest.mark.parametrize("curve", ["linear", "s_curve", "exponential"])
def test_fade_shapes(tmp_path: Path, curve: FadeCurve) -> None:
    level = 0.5
    source = write(tmp_path / "dc.wav", np.full((RATE, 2), level))
    fade = 0.4
    track = MixTrack(path=source, fade_in_seconds=fade, fade_out_seconds=fade, fade_curve=curve)
    mixdown([track], RAW, tmp_path / "out.wav")
    gain = read(tmp_path / "out.wav")[:, 0] / level
    frames = round(fade * RATE)
    for fraction in (0.25, 0.5, 0.75):
        i = round(fraction * frames)
        expected = fade_gain(np.array([fraction]), curve)[0]
        assert gain[i] == pytest.approx(expected, abs=1e-4)  # fade in
        assert gain[RATE - frames + i - 1] == pytest.approx(
            fade_gain(np.array([1 - fraction]), curve)[0], abs=1e-4
        )  # fade out, mirrored
    assert gain[0] == 0
    assert gain[-1] == 0
    assert gain[RATE // 2] == pytest.approx(1.0, abs=1e-6)
    mid = gain[frames // 2]
    assert (mid < 0.3) if curve == "exponential" else mid == pytest.approx(0.5, abs=1e-3)


def test_constant_power_pan(tmp_path: Path) -> None:
    tone = sine(1000, 1.0, 0.5)
    source = write(tmp_path / "tone.wav", tone)
    mixdown([MixTrack(path=source)], RAW, tmp_path / "centre.wav")
    out = read(tmp_path / "centre.wav")
    for side in (0, 1):
        assert rms_db(out[:, side]) - rms_db(tone) == pytest.approx(-3.01, abs=0.05)
    mixdown([MixTrack(path=source, pan=-1.0)], RAW, tmp_path / "left.wav")
    out = read(tmp_path / "left.wav")
    assert rms_db(out[:, 0]) == pytest.approx(rms_db(tone), abs=0.01)
    assert np.max(np.abs(out[:, 1])) == 0


def test_gain_and_stereo_balance(tmp_path: Path) -> None:
    source = write(tmp_path / "st.wav", np.stack([np.full(4800, 0.2), np.full(4800, 0.3)], 1))
    track = MixTrack(path=source, volume=1.5, volume_db=-6.0)
    mixdown([track], RAW, tmp_path / "centre.wav")
    out = read(tmp_path / "centre.wav")
    gain = 1.5 * 10 ** (-6 / 20)
    assert out[100] == pytest.approx([0.2 * gain, 0.3 * gain], abs=1e-6)  # unity balance
    mixdown([MixTrack(path=source, pan=0.5)], RAW, tmp_path / "right.wav")
    left, right = pan_gains(0.5)
    out = read(tmp_path / "right.wav")
    assert out[100] == pytest.approx([0.2 * left * math.sqrt(2), 0.3 * right * math.sqrt(2)])


def test_mono_output(tmp_path: Path) -> None:
    mono = write(tmp_path / "mono.wav", np.full(RATE // 2, 0.3))
    stereo = write(tmp_path / "stereo.wav", np.stack([np.full(RATE, 0.2), np.full(RATE, 0.4)], 1))
    settings = MixSettings(channels=1, normalize_lufs=None, ducking=None)
    info = mixdown(
        [MixTrack(path=mono, pan=-1.0), MixTrack(path=stereo)], settings, tmp_path / "out.wav"
    )
    out, _ = sf.read(str(tmp_path / "out.wav"))
    assert info.channels == 1
    assert out.ndim == 1
    assert out.shape[0] == RATE
    assert out[10] == pytest.approx(0.3 + 0.3, abs=1e-6)  # mono at its level, pan ignored
    assert out[-10] == pytest.approx(0.3, abs=1e-6)  # stereo averaged


def test_resampled_input_keeps_duration_and_pitch(tmp_path: Path) -> None:
    source_rate = 44100
    tone = sine(1000, 1.0, 0.5, source_rate)
    source = write(tmp_path / "tone44.wav", np.stack([tone, tone], 1), source_rate)
    info = mixdown([MixTrack(path=source)], RAW, tmp_path / "out.wav")
    out = read(tmp_path / "out.wav")[:, 0]
    assert info.frames == out.shape[0] == RATE
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert np.argmax(spectrum) * RATE / out.size == pytest.approx(1000, abs=1)
    assert rms_db(out[4800:-4800]) == pytest.approx(rms_db(tone), abs=0.05)


def test_streaming_resampler_equals_whole_signal(tmp_path: Path) -> None:
    """Small blocks, a trim and an offset: the same samples as resample_poly on the used part."""
    rng = np.random.default_rng(3)
    source_rate = 44100
    noise = signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal((source_rate, 2))) * 0.05
    source = write(tmp_path / "noise44.wav", noise, source_rate)
    track = MixTrack(
        path=source, start_time_seconds=0.01, trim_start_seconds=0.1, trim_end_seconds=0.9
    )
    mixdown([track], RAW, tmp_path / "out.wav", block_seconds=0.013)
    out = read(tmp_path / "out.wav")
    used = noise[round(0.1 * source_rate) : round(0.9 * source_rate)].astype(np.float32)
    expected = signal.resample_poly(used, 160, 147, axis=0)
    start = round(0.01 * RATE)
    assert out.shape[0] == start + expected.shape[0]
    np.testing.assert_allclose(out[start:], expected, atol=2e-6)


# --- ducking -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "key_db"), [("sine", -8.0), ("noise", -14.0)])
def test_ducking_follows_the_key(tmp_path: Path, kind: str, key_db: float) -> None:
    seconds = 4.0
    bed = write(tmp_path / "bed.wav", sine(200, seconds, 0.2))
    if kind == "sine":
        burst = sine(1000, 1.0, 10 ** (key_db / 20) * math.sqrt(2))
    else:
        rng = np.random.default_rng(7)
        burst = np.clip(rng.standard_normal(RATE), -3, 3)
        burst *= 10 ** (key_db / 20) / np.sqrt(np.mean(burst**2))
    voice = np.zeros(round(seconds * RATE))
    voice[RATE : 2 * RATE] = burst  # on from 1 s to 2 s, off after
    key = write(tmp_path / "voice.wav", voice)
    tracks = [
        MixTrack(path=bed, pan=1.0, ducked=True),  # alone on the right: what we measure
        MixTrack(path=key, pan=-1.0, key=True),
    ]
    settings = MixSettings(normalize_lufs=None, ducking=Ducking())
    mixdown(tracks, settings, tmp_path / "out.wav")
    right = read(tmp_path / "out.wav")[:, 1]

    def level(start: float, stop: float) -> float:
        return rms_db(right[round(start * RATE) : round(stop * RATE)])

    before = level(0.5, 0.9)
    assert before == pytest.approx(rms_db(sine(200, 1.0, 0.2)), abs=0.05)
    expected = -(key_db + 20) * 0.75
    for start in np.arange(1.1, 1.95, 0.1):  # attack settled
        assert level(start, start + 0.05) - before == pytest.approx(expected, abs=1.5)
    assert level(2.0 + 0.1 + 0.05, 2.25) - before > -1.0  # 100 ms + release after the key stops
    assert level(3.0, 3.5) == pytest.approx(before, abs=0.05)


def test_ducking_off_or_without_key(tmp_path: Path) -> None:
    bed = write(tmp_path / "bed.wav", sine(200, 1.0, 0.2))
    voice = write(tmp_path / "voice.wav", sine(1000, 1.0, 0.5))
    tracks = [MixTrack(path=bed, pan=1.0, ducked=True), MixTrack(path=voice, pan=-1.0, key=True)]
    mixdown(tracks, RAW, tmp_path / "off.wav")  # ducking=None
    assert rms_db(read(tmp_path / "off.wav")[:, 1]) == pytest.approx(rms_db(sine(200, 1, 0.2)))
    unkeyed = [tracks[0], MixTrack(path=voice, pan=-1.0)]
    settings = MixSettings(normalize_lufs=None)
    mixdown(unkeyed, settings, tmp_path / "nokey.wav")
    assert rms_db(read(tmp_path / "nokey.wav")[:, 1]) == pytest.approx(rms_db(sine(200, 1, 0.2)))


def test_mono_below_folds_the_lows(tmp_path: Path) -> None:
    low, high = sine(50, 1.0, 0.3), sine(2000, 1.0, 0.3)
    both = low + high
    source = write(tmp_path / "wide.wav", np.stack([both, -both], 1))  # anti-phase
    mixdown([MixTrack(path=source, mono_below_hz=120.0)], RAW, tmp_path / "out.wav")
    out = read(tmp_path / "out.wav")[RATE // 4 :, 0]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size))) / out.size
    bin_of = out.size / RATE
    assert spectrum[round(50 * bin_of)] < 0.05 * spectrum[round(2000 * bin_of)]
    assert rms_db(out) == pytest.approx(rms_db(high), abs=0.3)  # the highs pass untouched


# --- limiter and loudness ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "bits", "lufs"), [("wav", 24, None), ("flac", 16, None), ("wav", 24, -16.0)]
)
def test_limiter_ceiling(tmp_path: Path, fmt: str, bits: int, lufs: float | None) -> None:
    loud = music(2.0, seed=1)
    loud *= 2.0 / np.max(np.abs(loud))  # peaks at +6 dBFS
    loud[RATE // 2] = [2.0, -2.0]  # and a lone spike
    source = write(tmp_path / "loud.wav", loud)
    settings = MixSettings(normalize_lufs=lufs, format=fmt, bit_depth=bits)
    info = mixdown([MixTrack(path=source)], settings, tmp_path / f"out.{fmt}")
    out = read(tmp_path / f"out.{fmt}")
    assert out.shape == loud.shape
    assert np.max(np.abs(out)) <= CEILING
    if lufs is None:
        assert np.max(np.abs(out)) > CEILING - 0.01  # it limits, it does not just turn down
    assert info.peak_dbfs is not None
    assert info.peak_dbfs <= -1.0


def test_limiter_is_transparent_below_the_ceiling_and_delays_exactly() -> None:
    limiter = Limiter(CEILING, RATE, 2)
    rng = np.random.default_rng(0)
    x = (rng.uniform(-0.8, 0.8, (5000, 2))).astype(np.float32)
    blocks = [limiter.process(x[i : i + 700]) for i in range(0, 5000, 700)] + [limiter.flush()]
    y = np.concatenate(blocks)
    np.testing.assert_array_equal(y[limiter.latency :], x)


def test_limiter_turns_down_smoothly_rather_than_clipping() -> None:
    limiter = Limiter(CEILING, RATE, 1)
    tone = sine(1000, 0.5, 0.5)
    tone[RATE // 8 : RATE // 4] *= 4  # +6 dBFS for 125 ms
    x = tone.astype(np.float32)[:, None]
    y = np.concatenate([limiter.process(x[i : i + 1000]) for i in range(0, x.shape[0], 1000)])
    y = np.concatenate([y, limiter.flush()])[limiter.latency :, 0]
    assert np.max(np.abs(y)) <= CEILING
    audible = np.abs(x[:, 0]) > 0.05
    gain = y[audible] / x[audible, 0]
    assert np.all(gain <= 1.0 + 1e-6)
    assert np.max(np.abs(np.diff(gain))) < 0.02  # a ramp, not a clip (a clip jumps by ~0.5)
    assert np.min(gain) == pytest.approx(CEILING / 2, rel=0.01)  # just enough reduction
    assert gain[-1] > 0.99  # released: 250 ms later, 5 time constants


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_normalisation_hits_the_target(tmp_path: Path, target: float) -> None:
    first = write(tmp_path / "a.wav", music(3.0, seed=2) * 0.3)
    second = write(tmp_path / "b.wav", music(2.0, seed=3) * 0.2)
    tracks = [MixTrack(path=first), MixTrack(path=second, start_time_seconds=1.0, pan=0.3)]
    settings = MixSettings(normalize_lufs=target)
    info = mixdown(tracks, settings, tmp_path / "out.wav", workdir=tmp_path)
    out = read(tmp_path / "out.wav")
    measured = pyloudnorm.Meter(RATE).integrated_loudness(out)
    assert measured == pytest.approx(target, abs=0.5)
    assert info.loudness_lufs == pytest.approx(measured, abs=0.1)
    assert np.max(np.abs(out)) <= CEILING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "out.wav"]


@pytest.mark.parametrize("rate", [48000, 44100, 22050])
def test_meter_streams_like_pyloudnorm(rate: int) -> None:
    signal_ = music(3.0, seed=4, rate=rate).astype(np.float32)
    signal_[rate : rate + rate // 3] *= 0.01  # a quiet part, for the relative gate
    expected = pyloudnorm.Meter(rate).integrated_loudness(signal_)
    for size in (37, 1000, 4 * rate // 10 + 1, signal_.shape[0]):
        meter = LoudnessMeter(rate, 2)
        for i in range(0, signal_.shape[0], size):
            meter.add(signal_[i : i + size])
        assert meter.integrated() == pytest.approx(expected, abs=0.1)
        assert meter.peak == pytest.approx(float(np.max(np.abs(signal_))))


def test_meter_mono_silence_and_short() -> None:
    tone = sine(997, 2.0, 0.5).astype(np.float32)
    meter = LoudnessMeter(RATE, 1)
    meter.add(tone[:30000])
    meter.add(tone[30000:])
    assert meter.integrated() == pytest.approx(
        pyloudnorm.Meter(RATE).integrated_loudness(tone), abs=0.1
    )
    silent = LoudnessMeter(RATE, 2)
    silent.add(np.zeros((RATE, 2), dtype=np.float32))
    assert silent.integrated() == -math.inf
    assert silent.peak == 0
    short = LoudnessMeter(RATE, 1)
    short.add(tone[: RATE // 4])  # less than one 400 ms block
    assert short.integrated() == -math.inf
    with pytest.raises(ValueError, match="channels"):
        meter.add(np.zeros((10, 2), dtype=np.float32))


# --- blocks, cancel, progress --------------------------------------------------------------


def test_block_size_does_not_change_the_mix(tmp_path: Path) -> None:
    bed = write(tmp_path / "bed.wav", music(2.5, seed=5))
    voice = np.zeros(2 * RATE)
    voice[RATE // 2 : RATE] = sine(440, 0.5, 0.6)
    key = write(tmp_path / "voice.wav", voice)
    sfx = write(tmp_path / "sfx.wav", music(1.0, seed=6, rate=44100), 44100)
    tracks = [
        MixTrack(path=bed, ducked=True, fade_in_seconds=0.3, fade_curve="s_curve", volume=1.8),
        MixTrack(path=key, key=True, start_time_seconds=0.2),
        MixTrack(path=sfx, start_time_seconds=0.7, mono_below_hz=120, fade_out_seconds=0.2),
    ]
    outputs = []
    for block in (0.037, 2.0):
        path = tmp_path / f"out-{block}.wav"
        mixdown(tracks, MixSettings(), path, block_seconds=block)
        outputs.append(read(path))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)


class Cancelled(Exception):
    pass


@pytest.mark.parametrize(("lufs", "at"), [(-16.0, 3), (-16.0, 12), (None, 3)])
def test_cancel_leaves_nothing(tmp_path: Path, lufs: float | None, at: int) -> None:
    source = write(tmp_path / "in.wav", music(2.0, seed=8))
    work = tmp_path / "work"
    work.mkdir()
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == at:
            raise Cancelled

    out = tmp_path / "out.wav"
    with pytest.raises(Cancelled):
        mixdown(
            [MixTrack(path=source)],
            MixSettings(normalize_lufs=lufs),
            out,
            block_seconds=0.25,
            check=check,
            workdir=work,
        )
    assert calls == at
    assert not out.exists()
    assert list(work.iterdir()) == []


def test_progress_rises_to_one(tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", music(1.0, seed=9))
    seen: list[float] = []
    out = tmp_path / "o.wav"
    mixdown([MixTrack(path=source)], MixSettings(), out, block_seconds=0.1, progress=seen.append)
    assert len(seen) > 10
    assert all(b >= a for a, b in itertools.pairwise(seen))
    assert 0 < seen[0] < 0.2
    assert seen[-1] == 1.0


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", np.zeros(100))
    with pytest.raises(ValueError, match="cannot store"):
        mixdown([MixTrack(path=source)], MixSettings(sample_rate=96000, format="mp3"), tmp_path)
    with pytest.raises(ValueError, match="channels"):
        mixdown([MixTrack(path=source)], MixSettings(channels=6), tmp_path / "o.wav")
    with pytest.raises(ValueError, match="pan"):
        mixdown([MixTrack(path=source, pan=2.0)], RAW, tmp_path / "o.wav")
    with pytest.raises(ValueError, match="empty"):
        mixdown([MixTrack(path=source, trim_start_seconds=5.0)], RAW, tmp_path / "o.wav")
    assert not (tmp_path / "o.wav").exists()
