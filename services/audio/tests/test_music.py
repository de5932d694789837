"""The procedural music renderer: shapes, determinism, tempo, density, levels."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import signal

from audio import profiles
from audio.dsp import music
from audio.dsp.specs import MusicSpec, StemSpec

RATE = 16000
GENRES = ("drama", "documentary", "horror", "comedy", "action", "adventure", "sci-fi", "fantasy")


def spec_for(
    genre: str = "drama", intensity: str = "medium", action: str | None = None, **changes: object
) -> MusicSpec:
    spec = profiles.music_spec(genre=genre, intensity=intensity, action=action, rhythm=None)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=64)
def render(
    spec: MusicSpec, seconds: float = 8.0, seed: int = 1, block: float = 5.0
) -> dict[str, NDArray[np.float32]]:
    """The stems of a render, concatenated (cached: several tests listen to the same one)."""
    parts: dict[str, list[NDArray[np.float32]]] = {}
    for chunk in music.music_blocks(
        spec, duration_seconds=seconds, seed=seed, sample_rate=RATE, block_seconds=block
    ):
        for name, samples in chunk.items():
            parts.setdefault(name, []).append(samples)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def onset_strength(
    x: NDArray[np.float32], hop: float = 0.005, frame: float = 0.025
) -> NDArray[np.float64]:
    """Frame energy (25 ms frames every 5 ms), its rise from frame to frame, half-wave
    rectified."""
    mono = x.astype(np.float64).mean(axis=1)
    step, size = round(hop * RATE), round(frame * RATE)
    energy = np.concatenate(([0.0], np.cumsum(mono**2)))
    starts = np.arange(0, mono.shape[0] - size, step)
    rises = np.diff(energy[starts + size] - energy[starts])
    return np.asarray(np.maximum(rises, 0.0), dtype=np.float64)


def beat_period(x: NDArray[np.float32], hop: float = 0.005) -> float:
    """The lag (s) in 0.25-1.0 s where the onset strength's autocorrelation peaks."""
    onsets = onset_strength(x, hop)
    onsets -= onsets.mean()
    acf = np.correlate(onsets, onsets, "full")[onsets.shape[0] - 1 :]
    low, high = round(0.25 / hop), round(1.0 / hop)
    return (low + int(np.argmax(acf[low : high + 1]))) * hop


def onset_count(x: NDArray[np.float32], delta: float = 0.07) -> int:
    """Onsets by spectral flux (32 ms frames every 8 ms, log magnitudes): local maxima that
    stand ``delta`` (of the largest) above the mean of the 200 ms around them."""
    mono = x.astype(np.float64).mean(axis=1)
    _, _, z = signal.stft(mono, fs=RATE, nperseg=512, noverlap=384)
    magnitude = np.log1p(1000 * np.abs(z))
    flux = np.maximum(np.diff(magnitude, axis=1), 0.0).sum(axis=0)
    flux /= flux.max()
    peak = flux >= sliding_window_view(np.pad(flux, 3, mode="edge"), 7).max(axis=1)
    around = sliding_window_view(np.pad(flux, 12, mode="edge"), 25).mean(axis=1)
    return int(np.sum(peak & (flux > around + delta)))


def test_every_stem_has_its_shape_and_the_total_is_exact() -> None:
    spec = spec_for()
    blocks = list(
        music.music_blocks(spec, duration_seconds=7.3, seed=3, sample_rate=RATE, block_seconds=2)
    )
    assert [b["base"].shape[0] for b in blocks] == [32000, 32000, 32000, 20800]
    for block in blocks:
        assert tuple(block) == music.STEMS
        for name, samples in block.items():
            assert samples.dtype == np.float32
            assert samples.shape[1] == (1 if name == "bass" else 2)
    assert sum(b["drones"].shape[0] for b in blocks) == round(7.3 * RATE)


def test_only_the_stems_of_the_spec_are_rendered() -> None:
    spec = spec_for(stems=(StemSpec("percussion", -2.0), StemSpec("bass", -4.0, mono=True)))
    stems = render(spec, seconds=3.0)
    assert set(stems) == {"percussion", "bass"}
    assert stems["bass"].shape == (48000, 1)


def test_the_block_size_does_not_change_a_sample() -> None:
    spec = spec_for("sci-fi", "evolving", "explosion")
    five = render(spec, seconds=7.1, seed=4, block=5.0)
    odd = render(spec, seconds=7.1, seed=4, block=0.77)
    for name in music.STEMS:
        assert np.array_equal(five[name], odd[name]), name


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_music() -> None:
    spec = spec_for("fantasy")
    first, again, other = (
        render(spec, 9.0, seed=11),
        render(spec, 9.0, seed=11),
        render(spec, 9.0, seed=12),
    )
    for name in music.STEMS:
        assert np.array_equal(first[name], again[name]), name
        assert not np.allclose(first[name], other[name], atol=1e-3), name


@pytest.mark.parametrize("genre", GENRES)
@pytest.mark.parametrize(("bpm", "beat"), [(120.0, 0.5), (90.0, 60 / 90)])
def test_the_percussion_pulses_at_the_tempo(genre: str, bpm: float, beat: float) -> None:
    stems = render(spec_for(genre, bpm=bpm), seconds=6.0, seed=2)
    assert beat_period(stems["percussion"]) == pytest.approx(beat, abs=0.02)


@pytest.mark.parametrize("genre", GENRES)
def test_the_mix_pulses_at_90_bpm(genre: str) -> None:
    mix = music.mix_stems(render(spec_for(genre, bpm=90.0), seconds=6.0, seed=2))
    assert beat_period(mix) == pytest.approx(60 / 90, abs=0.02)


@pytest.mark.parametrize(("genre", "intensity"), [("action", "high"), ("horror", "medium")])
def test_the_mix_pulses_at_120_bpm(genre: str, intensity: str) -> None:
    mix = music.mix_stems(render(spec_for(genre, intensity, bpm=120.0), seconds=6.0, seed=2))
    assert beat_period(mix) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("genre", "bpm"), [("action", 145.0), ("comedy", 110.0), ("horror", 85.0), ("sci-fi", 70.0)]
)
def test_kicks_land_on_the_beats(genre: str, bpm: float) -> None:
    """At every beat the percussion's energy jumps within 5 ms: not before, not after."""
    stems = render(spec_for(genre, bpm=bpm), seconds=6.0, seed=5)
    drums = stems["percussion"].astype(np.float64).mean(axis=1)
    size = round(0.005 * RATE)

    def energy(start: int) -> float:
        return float(np.sum(drums[start : start + size] ** 2)) + 1e-12

    for beat in np.arange(60.0 / bpm, 5.0, 60.0 / bpm):
        frame = round(beat * RATE)
        assert energy(frame) > 5 * energy(frame - size)  # the hit starts in [beat, +5 ms)
        assert energy(frame - size) < 2 * energy(frame - 2 * size)  # nothing just before
        assert energy(frame + size) < 2 * energy(frame)  # and it had started already


def test_slow_motion_halves_the_rhythm() -> None:
    normal = render(spec_for("action", bpm=70.0), seconds=10.0, seed=6)
    slow = render(spec_for("action", bpm=70.0, slow_motion=True), seconds=10.0, seed=6)
    ratio = onset_count(slow["percussion"]) / onset_count(normal["percussion"])
    assert 0.35 < ratio < 0.65


@pytest.mark.parametrize("genre", ["drama", "horror", "comedy", "sci-fi"])
def test_high_intensity_has_more_onsets_than_low(genre: str) -> None:
    low = render(spec_for(genre, "low"), seconds=6.0, seed=2)
    medium = render(spec_for(genre, "medium"), seconds=6.0, seed=2)
    high = render(spec_for(genre, "high"), seconds=6.0, seed=2)
    drums = [onset_count(stems["percussion"]) for stems in (low, medium, high)]
    assert drums[0] < drums[1] < drums[2]
    assert drums[2] > 2 * drums[0]
    if genre != "sci-fi":  # a lead with vibrato has spectral flux between its notes
        assert onset_count(high["melody"]) > 2 * onset_count(low["melody"])
    if genre in ("drama", "comedy"):  # pads without slow beating: the mix counts too
        mixes = [onset_count(music.mix_stems(stems)) for stems in (low, high)]
        assert mixes[1] > 1.3 * mixes[0]


def test_evolving_intensity_grows_over_the_render() -> None:
    stems = render(spec_for("adventure", "evolving"), seconds=16.0, seed=8)
    early, late = stems["percussion"][: 5 * RATE], stems["percussion"][10 * RATE : 15 * RATE]
    assert onset_count(late) > 1.5 * onset_count(early)


def test_explosion_swells_and_bullet_time_drops() -> None:
    plain = music.mix_stems(render(spec_for("action"), seconds=8.0, seed=9))
    peak = music.mix_stems(render(spec_for("action", gain_peak=True), seconds=8.0, seed=9))
    drop = music.mix_stems(render(spec_for("action", gain_drop=True), seconds=8.0, seed=9))
    moment = round(4.0 * RATE)  # 40 % of 8 s is 3.2 s: on the nearest bar, 4 s at 120 BPM
    window = slice(moment + RATE // 4, moment + RATE)

    def rms(x: NDArray[np.float32]) -> float:
        return float(np.sqrt(np.mean(x[window].astype(np.float64) ** 2)))

    assert rms(peak) > 1.25 * rms(plain)
    assert rms(drop) < 0.5 * rms(plain)
    before = slice(0, moment - RATE)
    assert np.array_equal(peak[before], plain[before])


@pytest.mark.parametrize("genre", GENRES)
def test_no_sample_reaches_full_scale(genre: str) -> None:
    loudest = dict.fromkeys(music.STEMS, 0.0)
    for intensity, action in (("medium", None), ("high", "explosion")):
        stems = render(spec_for(genre, intensity, action), seconds=6.0, seed=2)
        for name, samples in stems.items():
            loudest[name] = max(loudest[name], float(np.max(np.abs(samples))))
        assert np.max(np.abs(music.mix_stems(stems))) < 1.0
    assert max(loudest.values()) < 1.0
    assert min(loudest.values()) > 0.01  # and none is silent (fx: the explosion's boom)


def test_stem_levels_and_filters_apply() -> None:
    quiet = dataclasses.replace(
        spec_for(), stems=(StemSpec("melody", -12.0), StemSpec("base", 0.0, high_cut_hz=500.0))
    )
    loud = dataclasses.replace(spec_for(), stems=(StemSpec("melody", 0.0), StemSpec("base", 0.0)))
    a, b = render(quiet, seconds=4.0), render(loud, seconds=4.0)
    assert np.allclose(a["melody"], b["melody"] * 10 ** (-12 / 20), atol=1e-6)
    spectrum = np.abs(np.fft.rfft(a["base"].mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(a["base"].shape[0], 1 / RATE)
    assert spectrum[freqs > 1000.0].sum() < 0.02 * spectrum.sum()


def test_genres_pick_their_modes() -> None:
    modes = {
        genre: {music._Composer(spec_for(genre), 8.0, seed).scale for seed in range(12)}
        for genre in ("horror", "comedy", "sci-fi")
    }
    assert modes["horror"] <= {music._MODES["phrygian"], music._MODES["locrian"]}
    assert modes["comedy"] <= {music._MODES["ionian"], music._MODES["mixolydian"]}
    assert modes["sci-fi"] == {music._MODES["lydian"]}


def test_mix_stems_puts_mono_stems_on_both_sides() -> None:
    block = {
        "base": np.full((4, 2), 0.25, dtype=np.float32),
        "bass": np.full((4, 1), 0.5, dtype=np.float32),
    }
    mixed = music.mix_stems(block)
    assert mixed.dtype == np.float32
    assert np.array_equal(mixed, np.full((4, 2), 0.75, dtype=np.float32))


def test_bad_arguments_are_refused_and_nothing_is_a_zero_render() -> None:
    assert list(music.music_blocks(spec_for(), duration_seconds=0.0, seed=1)) == []
    with pytest.raises(ValueError, match="duration"):
        next(music.music_blocks(spec_for(), duration_seconds=-1.0, seed=1))
    with pytest.raises(ValueError, match="block_seconds"):
        next(music.music_blocks(spec_for(), duration_seconds=1.0, seed=1, block_seconds=0))
    with pytest.raises(ValueError, match="unknown music stems"):
        next(
            music.music_blocks(
                spec_for(stems=(StemSpec("vocals", 0.0),)), duration_seconds=1.0, seed=1
            )
        )
