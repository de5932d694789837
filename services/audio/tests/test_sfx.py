"""The procedural sound effects and ambience beds: shapes, determinism, filters, bullet time,
transients, levels."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from audio import profiles
from audio.dsp import music, sfx
from audio.dsp.specs import SfxSpec, StemSpec

RATE = 16000
ENVIRONMENTS = ("city", "forest", "rain", "wind", "interior", "space", "underwater", "default")


def spec_for(
    action: str = "explosion",
    intensity: str = "medium",
    environment: str | None = "city",
    muffling: str | None = None,
) -> SfxSpec:
    return profiles.sfx_spec(
        action=action, intensity=intensity, environment=environment, muffling=muffling
    )


@functools.lru_cache(maxsize=32)
def render(
    spec: SfxSpec, seconds: float = 4.0, seed: int = 1, block: float = 5.0, rate: int = RATE
) -> dict[str, NDArray[np.float32]]:
    """The stems of a render, concatenated (cached)."""
    parts: dict[str, list[NDArray[np.float32]]] = {}
    for chunk in sfx.sfx_blocks(
        spec, duration_seconds=seconds, seed=seed, sample_rate=rate, block_seconds=block
    ):
        for name, samples in chunk.items():
            parts.setdefault(name, []).append(samples)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


@functools.lru_cache(maxsize=64)
def ambience(
    environment: str | None,
    intensity: str = "medium",
    seconds: float = 4.0,
    seed: int = 1,
    block: float = 5.0,
) -> NDArray[np.float32]:
    blocks = sfx.ambient_blocks(
        environment=environment,
        intensity=intensity,
        duration_seconds=seconds,
        seed=seed,
        sample_rate=RATE,
        block_seconds=block,
    )
    return np.concatenate(list(blocks))


Floats = NDArray[np.float64]


def power_spectrum(x: NDArray[np.float32], rate: int = RATE) -> tuple[Floats, Floats]:
    mono = x.astype(np.float64).mean(axis=1)
    power = np.abs(np.fft.rfft(mono)) ** 2
    return np.fft.rfftfreq(mono.shape[0], 1 / rate).astype(np.float64), power.astype(np.float64)


def share_above(x: NDArray[np.float32], hz: float, rate: int = RATE) -> float:
    """The share of the energy above ``hz`` (0 for silence)."""
    freqs, power = power_spectrum(x, rate)
    total = power.sum()
    return float(power[freqs > hz].sum() / total) if total > 0 else 0.0


def centroid(x: NDArray[np.float32]) -> float:
    freqs, power = power_spectrum(x)
    return float((freqs * power).sum() / power.sum())


def test_every_stem_has_its_shape_and_the_total_is_exact() -> None:
    spec = SfxSpec(
        action="impact",
        intensity="medium",
        environment="forest",
        stems=(StemSpec("action", 4.0, mono=True), *spec_for().stems[1:]),
    )
    blocks = list(
        sfx.sfx_blocks(spec, duration_seconds=7.3, seed=3, sample_rate=RATE, block_seconds=2)
    )
    assert [b["action"].shape[0] for b in blocks] == [32000, 32000, 32000, 20800]
    for block in blocks:
        assert tuple(block) == sfx.SFX_STEMS
        for name, samples in block.items():
            assert samples.dtype == np.float32
            assert samples.shape[1] == (1 if name == "action" else 2)
    assert sum(b["bullet_time"].shape[0] for b in blocks) == round(7.3 * RATE)


def test_the_block_size_does_not_change_a_sample_and_seeds_decide() -> None:
    spec = spec_for("gunshot", "high", "rain", "subjective")
    five = render(spec, 6.3, seed=4, block=5.0)
    odd = render(spec, 6.3, seed=4, block=0.61)
    other = render(spec, 6.3, seed=5)
    for name in sfx.SFX_STEMS:
        assert np.array_equal(five[name], odd[name]), name
        assert not np.allclose(five[name], other[name], atol=1e-4), name
    assert np.array_equal(
        ambience("wind", "evolving", 5.1, 2, 5.0), ambience("wind", "evolving", 5.1, 2, 1.3)
    )


def test_the_first_hit_is_at_half_a_second_and_a_gunshot_attacks_at_once() -> None:
    stems = render(spec_for("gunshot"), rate=48000)
    shot = np.abs(stems["action"].astype(np.float64)).max(axis=1)
    onset = int(np.argmax(shot > 0.1 * shot.max()))
    assert onset / 48000 == pytest.approx(0.5, abs=0.001)
    peak = onset + int(np.argmax(shot[onset : onset + 4800]))
    assert (peak - onset) / 48000 < 0.005
    assert shot[onset + 4800 : onset + 9600].max() < 0.3 * shot.max()  # and it dies away


def test_explosions_are_cut_above_3_khz() -> None:
    stems = render(spec_for("explosion"), 6.0)
    assert (
        profiles.sfx_spec(action="explosion", intensity="medium", environment=None, muffling=None)
        .stems[0]
        .high_cut_hz
        == 3000.0
    )
    assert share_above(stems["action"], 4000.0) < 0.05


def test_a_high_cut_removes_what_a_riser_has_above_it() -> None:
    plain = SfxSpec("gunshot", "medium", None, (StemSpec("stylized", 0.0),))
    cut = SfxSpec("gunshot", "medium", None, (StemSpec("stylized", 0.0, high_cut_hz=3000.0),))
    assert share_above(render(plain)["stylized"], 4000.0) > 0.3
    assert share_above(render(cut)["stylized"], 4000.0) < 0.05


@pytest.mark.parametrize("action", ["gunshot", "whoosh", "footsteps"])
def test_muffling_keeps_every_stem_below_1600_hz(action: str) -> None:
    stems = render(spec_for(action, "high", "rain", "infiltration"), 5.0)
    for name, samples in stems.items():
        assert share_above(samples, 1600.0) < 0.05, name


@pytest.mark.parametrize("action", ["gunshot", "whoosh", "explosion"])
def test_subjective_band_pass_keeps_the_octave_around_1500_hz(action: str) -> None:
    stems = render(spec_for(action, "medium", "forest", "subjective"), 5.0)
    for name in ("action", "environment", "stylized"):
        freqs, power = power_spectrum(stems[name])
        inside = (freqs > 1500 / 2**0.5) & (freqs < 1500 * 2**0.5)
        assert power[inside].sum() > 0.6 * power.sum(), name


def test_bullet_time_is_lower_and_twice_as_long() -> None:
    spec = SfxSpec(
        "gunshot",
        "low",
        None,
        (
            StemSpec("action", 0.0),
            StemSpec("bullet_time", 0.0, time_stretch=2.0, pitch_semitones=-7.0),
        ),
    )
    stems = render(spec, 4.0)
    action, slowed = stems["action"], stems["bullet_time"]
    assert centroid(slowed) < 0.8 * centroid(action)

    def lasting(x: NDArray[np.float32]) -> float:
        """Seconds from the hit until 95 % of its energy has sounded."""
        energy = np.cumsum(np.sum(x.astype(np.float64) ** 2, axis=1)[RATE // 2 :])
        return int(np.argmax(energy > 0.95 * energy[-1])) / RATE

    # x2, plus the few tens of milliseconds a granular stretch smears an attack over
    assert 1.8 < lasting(slowed) / lasting(action) < 2.6
    profile = render(spec_for("gunshot"), 4.0)  # -7 st, x2, 2 kHz high cut
    assert centroid(profile["bullet_time"]) < 0.6 * centroid(profile["action"])


def test_the_environment_stem_is_the_ambience_bed_at_its_level() -> None:
    stems = render(spec_for("whoosh", "medium", "underwater"), 4.0)
    bed = ambience("underwater", "medium", 4.0)
    assert np.allclose(stems["environment"], bed * 10 ** (-12 / 20), atol=1e-6)


@pytest.mark.parametrize("action", ["impact", "gunshot", "fight", "footsteps"])
def test_high_intensity_hits_more_often_than_low(action: str) -> None:
    def hits(intensity: str) -> int:
        x = np.abs(render(spec_for(action, intensity), 12.0)["action"]).max(axis=1)
        frames = x[: x.shape[0] // 800 * 800].reshape(-1, 800).max(axis=1)  # 50 ms
        loud = frames > 0.25 * frames.max()
        return int(np.sum(loud[1:] & ~loud[:-1]) + loud[0])

    assert hits("high") > hits("low")


@pytest.mark.parametrize(
    "action", ["explosion", "impact", "gunshot", "whoosh", "fight", "chase", "bullet_time"]
)
def test_no_sample_reaches_full_scale(action: str) -> None:
    for intensity in ("medium", "high"):
        stems = render(spec_for(action, intensity, "city"), 6.0, seed=2)
        for name, samples in stems.items():
            assert 0.005 < np.max(np.abs(samples)) < 1.0, (name, intensity)
        assert np.max(np.abs(music.mix_stems(stems))) < 1.0


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_ambience_beds_sound_without_clipping(environment: str) -> None:
    for intensity in ("low", "medium", "high", "evolving"):
        bed = ambience(environment, intensity)
        assert bed.shape == (4 * RATE, 2)
        assert bed.dtype == np.float32
        rms = float(np.sqrt(np.mean(bed.astype(np.float64) ** 2)))
        assert rms > 0.01, intensity
        assert np.max(np.abs(bed)) < 1.0, intensity
    assert np.mean(ambience(environment, "high") ** 2) > np.mean(ambience(environment, "low") ** 2)


def test_environments_differ_in_their_spectra() -> None:
    edges = 62.5 * 2.0 ** np.arange(8)  # octave bands from 62.5 Hz to 8 kHz

    def bands(x: NDArray[np.float32]) -> Floats:
        freqs, power = power_spectrum(x)
        energy = np.array([power[(freqs >= lo) & (freqs < lo * 2)].sum() for lo in edges[:-1]])
        return np.asarray(10 * np.log10(energy / power.sum() + 1e-12), dtype=np.float64)

    profiles_db = {env: bands(ambience(env)) for env in ENVIRONMENTS}
    for a, b in itertools.combinations(ENVIRONMENTS, 2):
        assert np.max(np.abs(profiles_db[a] - profiles_db[b])) > 3.0, (a, b)


def test_environment_labels_and_defaults() -> None:
    assert np.array_equal(ambience("Forêt"), ambience("forest"))
    assert np.array_equal(ambience(None), ambience("default"))
    assert np.array_equal(ambience("the moon"), ambience("default"))
    assert not np.array_equal(ambience("forest"), ambience("forest", seed=2))


def test_bad_arguments_are_refused_and_nothing_is_a_zero_render() -> None:
    assert list(sfx.sfx_blocks(spec_for(), duration_seconds=0.0, seed=1)) == []
    with pytest.raises(ValueError, match="unknown sfx stems"):
        next(
            sfx.sfx_blocks(
                SfxSpec("impact", "low", None, (StemSpec("music", 0.0),)),
                duration_seconds=1.0,
                seed=1,
            )
        )
    with pytest.raises(ValueError, match="duration"):
        next(sfx.ambient_blocks(environment=None, intensity="low", duration_seconds=-2, seed=1))
