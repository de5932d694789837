"""Speech synthesis (espeak-ng) and the voice effects, measured on the audio itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
import pytest
from numpy.typing import NDArray

from audio.dsp import catalogue, effects
from audio.dsp.voice import (
    EMOTIONS,
    STYLES,
    VOICE_TYPES,
    UnknownVoiceLanguage,
    VoiceParams,
    available_languages,
    default_engine,
    render_voice,
    resolve_language,
)
from storycore_shared.contracts.voices import VOICE_LANGUAGES

RATE = 48000
SENTENCE = "Bonjour, je m'appelle Claire et je vais vous raconter une histoire."
SENTENCE_WORDS = 11


@cache
def _render(text: str = SENTENCE, sample_rate: int = RATE, **fields: object) -> NDArray[np.float32]:
    return render_voice(text, VoiceParams(**fields), sample_rate=sample_rate)  # type: ignore[arg-type]


def _mono(x: NDArray[np.float32]) -> NDArray[np.float64]:
    return x[:, 0].astype(np.float64)


def _band_fraction(x: NDArray[np.float32], sample_rate: int, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(_mono(x))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1 / sample_rate)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def _centroid(x: NDArray[np.float32], sample_rate: int) -> float:
    power = np.abs(np.fft.rfft(_mono(x))) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1 / sample_rate)
    return float((freqs * power).sum() / power.sum())


def _f0(x: NDArray[np.float32], sample_rate: int) -> float:
    """Median autocorrelation pitch of the voiced 40 ms frames."""
    y = _mono(x)
    frame = int(0.04 * sample_rate)
    shortest, longest = int(sample_rate / 600), int(sample_rate / 50)
    pitches = []
    for start in range(0, y.size - frame, frame):
        chunk = y[start : start + frame]
        if np.sqrt(np.mean(chunk**2)) < 0.02:
            continue
        corr = np.correlate(chunk, chunk, "full")[frame - 1 :]
        lag = shortest + int(np.argmax(corr[shortest:longest]))
        if corr[lag] > 0.5 * corr[0]:
            pitches.append(sample_rate / lag)
    assert len(pitches) > 10, "too few voiced frames to estimate a pitch"
    return float(np.median(pitches))


def _window_peaks(x: NDArray[np.float32], sample_rate: int, seconds: float) -> NDArray[np.float64]:
    size = int(seconds * sample_rate)
    count = x.shape[0] // size
    peaks: NDArray[np.float64] = np.abs(_mono(x)[: count * size].reshape(count, size)).max(axis=1)
    return peaks


def _last_above(x: NDArray[np.float32], db: float) -> int:
    """Index of the last sample within ``db`` of the peak."""
    y = np.abs(_mono(x))
    return int(np.flatnonzero(y >= y.max() * 10 ** (db / 20))[-1])


class ToneEngine:
    """A stand-in engine: a 220 Hz buzz for each word over a -50 dBFS noise floor."""

    name = "tone"

    def voices(self) -> dict[str, str]:
        return {"xx-XX": "buzz"}

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        gender: str,
        variant: str | None,
        rate_wpm: float,
        pitch: float,
    ) -> tuple[NDArray[np.float32], int]:
        del language, gender, variant
        rate = 16000
        word = int(rate * 60 / rate_wpm * 0.6)
        t = np.arange(word) / rate
        f0 = 220 * 2 ** (pitch / 12)
        buzz = 0.5 * np.sign(np.sin(2 * np.pi * f0 * t)) * np.hanning(word)
        gap = np.zeros(2 * word)
        speech = np.concatenate([np.concatenate([buzz, gap]) for _ in text.split()])
        floor = np.random.default_rng(1).standard_normal(speech.size) * 10 ** (-50 / 20) / 3
        return (speech + floor).astype(np.float32), rate


# --- the request's contract --------------------------------------------------------------------


def test_catalogue_tables() -> None:
    assert set(EMOTIONS) == {
        "neutral", "happy", "sad", "angry", "fear", "surprised", "whisper", "deep", "robotic",
    }  # fmt: skip
    assert VOICE_TYPES == {"raw": 0.0, "sung": -3.0, "whisper": -6.0, "styled": 0.0}
    assert STYLES == ("radio", "robot", "telephone", "deep_space", "corrupted")


@pytest.mark.parametrize(
    "fields",
    [
        {"gender": "child"},
        {"type": "shouted"},
        {"emotion": "bored"},
        {"type": "styled"},
        {"type": "styled", "style": "underwater"},
        {"type": "raw", "style": "radio"},
        {"pitch_semitones": 13},
        {"speed": 0.4},
    ],
)
def test_invalid_params_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"voice|pitch|speed|style"):
        VoiceParams(**fields)  # type: ignore[arg-type]


def test_languages_are_bcp47_and_verified() -> None:
    languages = available_languages()
    assert {"fr-FR", "en-US", "en-GB", "es-ES", "de-DE"} <= set(languages)
    assert 10 <= len(languages) <= 14
    assert languages == sorted(languages)
    assert default_engine() is default_engine()


def test_the_catalogue_speaks_exactly_the_shared_languages() -> None:
    # Productions validate a narration's language against the shared list at request time.
    assert catalogue.LANGUAGES == VOICE_LANGUAGES
    assert set(available_languages()) <= set(VOICE_LANGUAGES)


def test_language_resolution() -> None:
    assert resolve_language("fr") == "fr-FR"
    assert resolve_language("FR_fr") == "fr-FR"
    assert resolve_language("en-us") == "en-US"
    with pytest.raises(UnknownVoiceLanguage) as ambiguous:
        resolve_language("en")
    assert {"en-GB", "en-US"} <= set(ambiguous.value.available)


def test_unknown_language_names_the_available_ones() -> None:
    with pytest.raises(UnknownVoiceLanguage) as raised:
        render_voice("Bonjour", VoiceParams(language="tlh-KL"))
    assert raised.value.language == "tlh-KL"
    assert raised.value.available == available_languages()
    assert "fr-FR" in str(raised.value)


def test_bare_language_code_speaks() -> None:
    assert np.array_equal(_render("Bonjour", language="fr"), _render("Bonjour"))


def test_empty_text_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        render_voice("  ", VoiceParams())


# --- speech -------------------------------------------------------------------------------------


def test_sentence_lasts_as_long_as_its_words() -> None:
    voice = _render(sample_rate=24000)
    assert voice.dtype == np.float32
    assert voice.ndim == 2
    assert voice.shape[1] == 1
    seconds = voice.shape[0] / 24000
    expected = SENTENCE_WORDS / 175 * 60
    assert 0.5 * expected <= seconds <= 2 * expected
    assert 0.5 < np.abs(voice).max() <= 1.0


def test_speech_energy_is_in_the_voice_band() -> None:
    assert _band_fraction(_render(), RATE, 100, 4000) > 0.5


def test_languages_sound_different() -> None:
    text = "Le chat est sur la table."
    french, english = _render(text, language="fr-FR"), _render(text, language="en-US")
    assert french.shape != english.shape or not np.allclose(french, english, atol=0.05)


def test_genders_differ_in_pitch() -> None:
    female, male = _f0(_render(), RATE), _f0(_render(gender="male"), RATE)
    assert female > 1.4 * male


def test_double_speed_is_much_shorter() -> None:
    normal, fast = _render(), _render(speed=2.0)
    assert fast.shape[0] <= 0.65 * normal.shape[0]


def test_narrator_is_slower_than_male() -> None:
    assert _render(gender="narrator").shape[0] > 1.03 * _render(gender="male").shape[0]


def test_octave_up_raises_pitch_and_keeps_duration() -> None:
    normal, high = _render(), _render(pitch_semitones=12.0)
    assert 1.7 < _f0(high, RATE) / _f0(normal, RATE) < 2.3
    assert abs(high.shape[0] / normal.shape[0] - 1) < 0.15


def test_octave_down_lowers_pitch_and_keeps_duration() -> None:
    normal, low = _render(), _render(pitch_semitones=-12.0)
    assert 0.43 < _f0(low, RATE) / _f0(normal, RATE) < 0.6
    assert abs(low.shape[0] / normal.shape[0] - 1) < 0.15


def test_emotions_apply_their_modifiers() -> None:
    neutral, sad, angry = _render(), _render(emotion="sad"), _render(emotion="angry")
    assert sad.shape[0] > 1.1 * neutral.shape[0]  # speed 0.85
    assert _f0(sad, RATE) < _f0(neutral, RATE)
    # -3 dB before the type level; angry is +3 dB, which lands just at full scale
    assert np.abs(neutral).max() == pytest.approx(10 ** (-3 / 20), rel=0.05)
    assert np.abs(sad).max() == pytest.approx(10 ** (-6 / 20), rel=0.05)
    assert np.abs(angry).max() == pytest.approx(1.0, rel=0.05)


def test_same_request_gives_same_samples() -> None:
    params = VoiceParams(type="styled", style="corrupted", emotion="fear", pitch_semitones=3)
    first = render_voice(SENTENCE, params)
    assert np.array_equal(first, render_voice(SENTENCE, params))
    assert not np.array_equal(first, render_voice(SENTENCE + " Fin.", params)[: first.shape[0]])


def test_threads_render_in_parallel_with_the_same_result() -> None:
    requests = [VoiceParams(), VoiceParams(gender="male"), VoiceParams(language="en-US")] * 2
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda params: render_voice("Un, deux, trois.", params), requests))
    for params, result in zip(requests, results, strict=True):
        assert np.array_equal(result, _render("Un, deux, trois.", **vars(params)))


# --- types ------------------------------------------------------------------------------------


def test_whisper_is_quieter_and_gated() -> None:
    whisper = _render(type="whisper")
    assert np.abs(whisper).max() == pytest.approx(10 ** (-9 / 20), rel=0.05)
    quiet = np.sort(_window_peaks(whisper, RATE, 0.01))[:10]
    assert np.all(quiet == 0.0)


def test_whisper_gate_silences_the_noise_floor_of_any_engine() -> None:
    engine = ToneEngine()
    raw = render_voice("one two three four", VoiceParams(language="xx"), engine=engine)
    whisper = render_voice(
        "one two three four", VoiceParams(language="xx", type="whisper"), engine=engine
    )
    assert np.sort(_window_peaks(raw, RATE, 0.01))[0] > 0  # the noise floor is there
    peaks = _window_peaks(whisper, RATE, 0.01)
    assert (peaks == 0.0).mean() > 0.2  # gaps between words are silent
    assert peaks.max() > 0.3  # and the words are not


def test_noise_gate_keeps_soft_tails_within_its_hold() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    loud = 0.5 * np.sin(2 * np.pi * 300 * t) * (t < 0.3)
    soft_tail = 0.005 * np.sin(2 * np.pi * 300 * t) * ((t >= 0.3) & (t < 0.34))  # -46 dBFS
    floor = 0.002 * np.random.default_rng(0).standard_normal(rate) * (t >= 0.34)
    x = (loud + soft_tail + floor).astype(np.float32)
    gated = effects.noise_gate(x, rate, -40.0)
    kept = slice(int(0.01 * rate), int(0.34 * rate))
    assert np.array_equal(gated[kept], x[kept])
    assert np.all(gated[int(0.5 * rate) :] == 0.0)


def test_sung_is_slower_with_vibrato() -> None:
    raw, sung = _render(), _render(type="sung")
    assert sung.shape[0] > 1.1 * raw.shape[0]
    assert np.abs(sung).max() == pytest.approx(10 ** (-6 / 20), rel=0.05)


# --- styles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["radio", "telephone"])
def test_radio_and_telephone_are_band_limited(style: str) -> None:
    raw, styled = _render(), _render(type="styled", style=style)
    assert _band_fraction(raw, RATE, 0, 250) > 0.05
    assert _band_fraction(styled, RATE, 0, 250) < 0.01
    assert _band_fraction(styled, RATE, 4000, RATE / 2) < 0.01


def test_telephone_is_narrower_than_radio() -> None:
    radio, phone = _render(type="styled", style="radio"), _render(type="styled", style="telephone")
    assert _band_fraction(phone, RATE, 3200, 4000) < _band_fraction(radio, RATE, 3200, 4000)


def test_robot_is_ring_modulated() -> None:
    raw, robot = _mono(_render()), _mono(_render(type="styled", style="robot"))
    assert raw.shape == robot.shape
    correlation = np.corrcoef(raw, robot)[0, 1]
    assert abs(correlation) < 0.3


def test_corrupted_has_dropouts_inside_speech() -> None:
    raw, corrupted = _render(), _render(type="styled", style="corrupted")
    assert raw.shape == corrupted.shape
    raw_peaks = _window_peaks(raw, RATE, 0.03)
    corrupted_peaks = _window_peaks(corrupted, RATE, 0.03)
    dropped = (corrupted_peaks == 0.0) & (raw_peaks > 0.05)
    assert dropped.sum() >= 2


def test_bit_crush_keeps_few_levels_held() -> None:
    x = np.sin(np.linspace(0, 20, 4000)).astype(np.float32)
    crushed = effects.bit_crush(x, bits=4, hold=4)
    assert np.unique(crushed).size <= 2**4 + 1
    assert np.all(crushed[0::4] == crushed[3::4])


def test_deep_space_echoes_and_is_lower() -> None:
    raw, deep = _render(), _render(type="styled", style="deep_space")
    assert _last_above(deep, -40) - _last_above(raw, -40) > 0.5 * RATE
    assert _f0(deep, RATE) < 0.85 * _f0(raw, RATE)
    assert _centroid(deep, RATE) < _centroid(raw, RATE)


@pytest.mark.parametrize("style", STYLES)
def test_styles_stay_within_full_scale(style: str) -> None:
    styled = _render(type="styled", style=style, emotion="angry")
    assert styled.dtype == np.float32
    assert 0.5 < np.abs(styled).max() <= 1.0
