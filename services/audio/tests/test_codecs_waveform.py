"""Encoding, block reading, probing (audio.dsp.codecs) and waveform peaks (audio.dsp.waveform)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from numpy.typing import NDArray

from audio.dsp.codecs import (
    CONTENT_TYPES,
    FORMATS,
    probe,
    read_blocks,
    write_audio,
)
from audio.dsp.waveform import audiowaveform, waveform

RATE = 48000


def programme(seconds: float, rate: int = RATE, seed: int = 0) -> NDArray[np.float32]:
    """Tones with a beat and some noise, stereo."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    tones = sum(np.sin(2 * np.pi * f * t) for f in (196.0, 246.9, 293.7, 587.3)) / 4
    beat = 0.5 + 0.5 * np.abs(np.sin(np.pi * 3 * t))
    left = 0.5 * tones * beat + 0.03 * rng.standard_normal(t.size)
    right = 0.4 * tones * beat + 0.03 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1).astype(np.float32)


def in_blocks(data: NDArray[np.float32], size: int) -> Iterator[NDArray[np.float32]]:
    for i in range(0, data.shape[0], size):
        yield data[i : i + size]


def rms_db(x: NDArray[np.floating]) -> float:
    return 10 * math.log10(float(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize(
    ("fmt", "bits", "lossy"),
    [
        ("wav", 16, False),
        ("wav", 24, False),
        ("flac", 16, False),
        ("flac", 24, False),
        ("mp3", 24, True),
        ("ogg", 24, True),
    ],
)
def test_every_format_round_trips(tmp_path: Path, fmt: str, bits: int, lossy: bool) -> None:
    source = programme(2.0)
    path = tmp_path / f"out.{fmt}"
    info = write_audio(
        in_blocks(source, 10007),
        path,
        sample_rate=RATE,
        channels=2,
        format=fmt,
        bit_depth=bits,
    )
    assert info.frames == source.shape[0]
    assert info.duration_seconds == pytest.approx(2.0)
    expected = pyloudnorm.Meter(RATE).integrated_loudness(source)
    assert info.loudness_lufs == pytest.approx(expected, abs=0.01)
    assert info.peak_dbfs == pytest.approx(20 * math.log10(np.max(np.abs(source))))

    decoded, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == RATE
    assert decoded.shape[1] == 2
    assert abs(decoded.shape[0] / rate - 2.0) <= 0.05
    if lossy:
        assert rms_db(decoded) == pytest.approx(rms_db(source), abs=1.5)
    else:
        step = 2.0 ** -(bits - 1)
        np.testing.assert_allclose(decoded, source, atol=step)

    probed = probe(path)
    assert probed.frames == decoded.shape[0]
    assert (probed.sample_rate, probed.channels) == (RATE, 2)
    assert probed.loudness_lufs == pytest.approx(
        pyloudnorm.Meter(RATE).integrated_loudness(decoded), abs=0.1
    )
    assert probed.peak_dbfs == pytest.approx(20 * math.log10(np.max(np.abs(decoded))), abs=1e-4)


def test_content_types() -> None:
    assert FORMATS == ("wav", "flac", "mp3", "ogg")
    assert CONTENT_TYPES == {
        "wav": "audio/wav",
        "flac": "audio/flac",
        "mp3": "audio/mpeg",
        "ogg": "audio/ogg",
    }


def test_values_are_clipped(tmp_path: Path) -> None:
    loud = np.linspace(-2, 2, 4800, dtype=np.float32)[:, None]
    info = write_audio([loud], tmp_path / "c.wav", sample_rate=RATE, channels=1, format="wav")
    decoded, _ = sf.read(str(tmp_path / "c.wav"))
    assert np.max(decoded) <= 1.0
    assert np.min(decoded) >= -1.0
    assert decoded[-1] == pytest.approx(1.0, abs=1e-6)
    assert info.peak_dbfs == 0.0


def test_refusals(tmp_path: Path) -> None:
    block = [np.zeros((100, 2), dtype=np.float32)]
    kwargs = {"sample_rate": 96000, "channels": 2}
    with pytest.raises(ValueError, match="mp3 cannot store 96000"):
        write_audio(block, tmp_path / "a.mp3", format="mp3", **kwargs)
    with pytest.raises(ValueError, match="ogg cannot store"):
        write_audio(block, tmp_path / "a.ogg", format="ogg", sample_rate=384000, channels=2)
    with pytest.raises(ValueError, match="unknown format"):
        write_audio(block, tmp_path / "a.aac", format="aac", **kwargs)
    with pytest.raises(ValueError, match="bit_depth"):
        write_audio(block, tmp_path / "a.wav", format="wav", bit_depth=8, **kwargs)
    with pytest.raises(ValueError, match="channels"):
        write_audio(block, tmp_path / "b.wav", format="wav", sample_rate=RATE, channels=1)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_a_failing_source_removes_the_partial_file(tmp_path: Path) -> None:
    def blocks() -> Iterator[NDArray[np.float32]]:
        yield np.zeros((1000, 2), dtype=np.float32)
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        write_audio(blocks(), tmp_path / "x.flac", sample_rate=RATE, channels=2, format="flac")
    assert not (tmp_path / "x.flac").exists()


def test_silence_has_no_loudness(tmp_path: Path) -> None:
    silent = [np.zeros((RATE, 2), dtype=np.float32)]
    info = write_audio(silent, tmp_path / "s.wav", sample_rate=RATE, channels=2, format="wav")
    assert info.loudness_lufs is None
    assert info.peak_dbfs is None


def test_read_blocks(tmp_path: Path) -> None:
    data = programme(1.0)[:, :1]
    sf.write(str(tmp_path / "m.wav"), data, RATE, subtype="FLOAT")
    blocks = list(read_blocks(tmp_path / "m.wav", block_frames=7000))
    assert [b.shape[0] for b in blocks] == [7000] * 6 + [6000]
    np.testing.assert_array_equal(np.concatenate(blocks), data)
    part = list(read_blocks(tmp_path / "m.wav", block_frames=1000, start_frame=123, frames=2500))
    assert [b.shape for b in part] == [(1000, 1), (1000, 1), (500, 1)]
    np.testing.assert_array_equal(np.concatenate(part), data[123:2623])
    flat = list(read_blocks(tmp_path / "m.wav", start_frame=47000, always_2d=False))
    assert len(flat) == 1
    assert flat[0].shape == (1000,)
    assert flat[0].dtype == np.float32


# --- waveform ------------------------------------------------------------------------------


def signed_peaks(mono: NDArray[np.float64], points: int) -> NDArray[np.float64]:
    edges = np.arange(points + 1) * mono.size // points
    out = []
    for a, b in itertools.pairwise(edges):
        bucket = mono[a:b]
        high, low = bucket.max(), bucket.min()
        out.append(high if high >= -low else low)
    return np.array(out)


@pytest.fixture
def song(tmp_path: Path) -> tuple[Path, NDArray[np.float64]]:
    """2.5 s (more than one read block) of stereo, as 16-bit FLAC; its decoded mono sum."""
    path = tmp_path / "song.flac"
    sf.write(str(path), programme(2.5, seed=1), RATE, subtype="PCM_16")
    decoded, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return path, decoded.mean(axis=1, dtype=np.float64)


def test_waveform_matches_numpy(song: tuple[Path, NDArray[np.float64]]) -> None:
    path, mono = song
    answer = waveform(path, samples_per_second=60, max_points=1000)
    assert answer["sample_count"] == 150 == len(answer["waveform"])
    assert answer["duration_seconds"] == pytest.approx(2.5)
    assert answer["samples_per_second"] == pytest.approx(60)
    np.testing.assert_array_equal(answer["waveform"], signed_peaks(mono, 150))
    assert answer["peak_amplitude"] == pytest.approx(np.max(np.abs(answer["waveform"])))
    assert all(-1 <= v <= 1 for v in answer["waveform"])
    assert any(v < 0 for v in answer["waveform"])
    assert any(v > 0 for v in answer["waveform"])


def test_waveform_max_points(song: tuple[Path, NDArray[np.float64]]) -> None:
    path, mono = song
    answer = waveform(path, samples_per_second=60, max_points=47)
    assert answer["sample_count"] == 47 == len(answer["waveform"])
    assert answer["samples_per_second"] == pytest.approx(47 / 2.5)
    np.testing.assert_array_equal(answer["waveform"], signed_peaks(mono, 47))


@pytest.mark.parametrize("bits", [8, 16])
def test_audiowaveform_shape(song: tuple[Path, NDArray[np.float64]], bits: int) -> None:
    path, mono = song
    answer = audiowaveform(path, samples_per_second=60, max_points=1000, bits=bits)
    assert answer["version"] == 2
    assert answer["channels"] == 1
    assert answer["bits"] == bits
    assert answer["sample_rate"] == RATE
    assert answer["samples_per_pixel"] == 800
    assert answer["length"] == 150
    assert len(answer["data"]) == 2 * answer["length"]
    limit = 2 ** (bits - 1)
    data = np.array(answer["data"])
    assert data.min() >= -limit
    assert data.max() <= limit - 1
    lows, highs = data[0::2], data[1::2]
    assert np.all(lows <= highs)
    buckets = mono.reshape(150, 800)
    np.testing.assert_array_equal(lows, np.round(buckets.min(axis=1) * limit))
    np.testing.assert_array_equal(
        highs, np.clip(np.round(buckets.max(axis=1) * limit), 0, limit - 1)
    )
    capped = audiowaveform(path, samples_per_second=60, max_points=100, bits=bits)
    assert capped["length"] <= 100
    assert len(capped["data"]) == 2 * capped["length"]
    assert capped["samples_per_pixel"] * capped["length"] >= mono.size


def test_waveform_of_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), RATE)
    assert waveform(path)["waveform"] == []
    assert waveform(path)["sample_count"] == 0
    empty = audiowaveform(path)
    assert empty["length"] == 0
    assert empty["data"] == []
