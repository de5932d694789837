"""Speech synthesis and the voice profile: text to a mono float32 signal.

``render_voice`` turns a text and ``VoiceParams`` (the handbook's voice request) into audio through
any ``VoiceEngine``; the default one drives the bundled espeak-ng library (``espeakng-loader``).

How the request is applied:

- speed: ``request speed x emotion speed`` (x0.92 for the narrator, x0.85 when sung) times the
  normal 175 words per minute; the espeak engine clamps the rate to its 80..450 wpm;
- pitch: ``request semitones + emotion semitones`` (-4 more for deep_space), asked of the engine,
  which keeps the duration (see ``EspeakEngine.synthesize``);
- volume: the voice is peak-normalised to ``REFERENCE_PEAK_DB``, then given the emotion's gain
  and the type's level (raw 0, sung -3, whisper -6, styled 0 dB); a peak above 1.0 is scaled
  down, never clipped;
- whisper (the type, or the whisper emotion) uses the engine's whispering voice and a -40 dBFS
  noise gate; sung adds vibrato and a small room; styled runs ``audio.dsp.effects.apply_style``.

The output is deterministic: the same text and parameters give the same array.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from audio.dsp import effects
from audio.dsp.catalogue import (
    EMOTIONS,
    ESPEAK_VOICES,
    GENDERS,
    VOICE_TYPES,
    Emotion,
    UnknownVoiceLanguage,
    resolve,
)
from audio.dsp.effects import STYLES
from audio.dsp.filters import resample, stretch_pitch

__all__ = [
    "EMOTIONS",
    "GENDERS",
    "REFERENCE_PEAK_DB",
    "STYLES",
    "VOICE_TYPES",
    "Emotion",
    "EspeakEngine",
    "UnknownVoiceLanguage",
    "VoiceEngine",
    "VoiceParams",
    "VoiceSynthesisError",
    "available_languages",
    "default_engine",
    "render_voice",
    "resolve_language",
]

Signal = NDArray[np.float32]


class VoiceEngine(Protocol):
    """A text-to-speech backend (espeak-ng today; a neural voice can take its place)."""

    name: str

    def voices(self) -> dict[str, str]:
        """BCP-47 language → the engine's voice name, for the languages it can speak."""
        ...

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        gender: str,
        variant: str | None,
        rate_wpm: float,
        pitch: float,
    ) -> tuple[Signal, int]:
        """Speak ``text``: mono float32 in [-1, 1] and its sample rate.

        ``language`` is a key of ``voices()``; ``gender`` female, male or narrator; ``variant``
        None or "whisper"; ``rate_wpm`` words per minute (175 is normal); ``pitch`` semitones
        from the voice's natural pitch.
        """
        ...


class VoiceSynthesisError(RuntimeError):
    """The speech engine failed (library missing, crash, timeout)."""


REFERENCE_PEAK_DB = -3.0
"""Peak of a voice before emotion and type levels: room for the loudest emotion (+3 dB)."""

NORMAL_RATE_WPM = 175.0
WHISPER_GATE_DB = -40.0
_NARRATOR_PACE = 0.92
_SUNG_PACE = 0.85


@dataclass(frozen=True)
class VoiceParams:
    """A voice request (handbook: ``voice`` of POST /api/audio/generate); checked on creation,
    except ``language``, which depends on the engine."""

    language: str = "fr-FR"
    gender: str = "female"
    type: str = "raw"
    style: str | None = None
    emotion: str = "neutral"
    pitch_semitones: float = 0.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("gender", self.gender, GENDERS)
        _check_choice("type", self.type, tuple(VOICE_TYPES))
        _check_choice("emotion", self.emotion, tuple(EMOTIONS))
        if self.type == "styled":
            if self.style is None:
                raise ValueError(f"type 'styled' needs a style: {', '.join(STYLES)}")
            _check_choice("style", self.style, STYLES)
        elif self.style is not None:
            raise ValueError(f"style {self.style!r} needs type 'styled', not {self.type!r}")
        if not -12.0 <= self.pitch_semitones <= 12.0:
            raise ValueError(f"pitch_semitones must be within -12..12, not {self.pitch_semitones}")
        if not 0.5 <= self.speed <= 2.0:
            raise ValueError(f"speed must be within 0.5..2, not {self.speed}")


def _check_choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown voice {field} {value!r}; allowed: {', '.join(allowed)}")


# --- the espeak-ng engine ----------------------------------------------------------------------

# Voice variants (espeak-ng-data/voices/!v) per gender, plain and whispering.
_ESPEAK_VARIANTS: dict[str, str] = {"female": "f3", "male": "m3", "narrator": "m2"}
_ESPEAK_WHISPER_VARIANTS: dict[str, str] = {
    "female": "whisperf",
    "male": "whisper",
    "narrator": "whisper",
}
# espeakRANGE (intonation range, 50 normal): the narrator's calmer melody.
_ESPEAK_RANGE: dict[str, int] = {"female": 50, "male": 50, "narrator": 38}

_ESPEAK_RATE_LIMITS = (80.0, 450.0)

# Measured with this library: espeakPITCH (its intonation range scaled along) → semitones of
# median F0 from espeakPITCH 50. Between the points the shift is interpolated.
_ESPEAK_PITCH_CALIBRATION: tuple[tuple[float, ...], tuple[float, ...]] = (
    (-8.1, -5.6, -3.0, 0.0, 3.2, 6.25, 9.3),  # semitones
    (0.0, 17.0, 33.0, 50.0, 67.0, 83.0, 100.0),  # espeakPITCH
)

# The synthesis runs in a fresh interpreter for each request: espeak-ng keeps hidden state from
# one synthesis to the next (pitch flutter position, wave phase, a time-seeded random
# generator), so in a long-lived process the same text never gives the same samples twice.
# Stdlib only (``python -I -S``): about 35 ms of start-up.
_CHILD_SOURCE = r"""
import ctypes, json, struct, sys

def main():
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    lib = ctypes.CDLL(sys.argv[1])
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    # AUDIO_OUTPUT_SYNCHRONOUS, default buffer, data path, espeakINITIALIZE_DONT_EXIT
    rate = lib.espeak_Initialize(2, 0, sys.argv[2].encode(), 0x8000)
    if rate <= 0:
        sys.stderr.write("espeak_Initialize failed")
        return 3
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    if request["mode"] == "probe":
        status = {v: lib.espeak_SetVoiceByName(v.encode()) for v in request["voices"]}
        sys.stdout.write(json.dumps({"sample_rate": rate, "status": status}))
        return 0
    chunks = []
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )

    def collect(wav, count, events):
        if wav and count > 0:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    callback = callback_type(collect)
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(request["voice"].encode()) != 0:
        sys.stderr.write("no espeak-ng voice " + request["voice"])
        return 4
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    # espeakRATE 1, espeakPITCH 3, espeakRANGE 4
    for parameter, value in ((1, request["rate"]), (3, request["pitch"]), (4, request["range"])):
        if lib.espeak_SetParameter(parameter, value, 0) != 0:
            sys.stderr.write("espeak_SetParameter failed")
            return 5
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(request["seed"])
    text = request["text"].encode("utf-8") + b"\0"
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    # from character 0 (POS_CHARACTER), no end, espeakCHARS_UTF8
    if lib.espeak_Synth(text, len(text), 0, 1, 0, 1, None, None) != 0:
        sys.stderr.write("espeak_Synth failed")
        return 5
    lib.espeak_Synchronize()
    out = sys.stdout.buffer
    out.write(struct.pack("=i", rate))
    out.write(b"".join(chunks))
    return 0

sys.exit(main())
"""

_CHILD_EXIT_REASONS = {3: "initialisation failed", 4: "voice not found", 5: "synthesis failed"}


def _espeak_pitch(semitones: float) -> tuple[int, float]:
    """espeakPITCH for ``semitones`` and what is left for a resampling shift (beyond its range)."""
    points, values = _ESPEAK_PITCH_CALIBRATION
    within = min(max(semitones, points[0]), points[-1])
    return round(float(np.interp(within, points, values))), semitones - within


class EspeakEngine:
    """espeak-ng, from the ``espeakng-loader`` wheel (library and voice data).

    Creating it checks which catalogue voices exist in the bundled data (one short child
    process). Each ``synthesize`` runs the library in a fresh child interpreter through ctypes
    (see ``_CHILD_SOURCE``): output is byte-identical for the same request, calls from several
    threads run in parallel without sharing espeak-ng's global state, and a crash of the library
    cannot take the worker down.
    """

    name: str = "espeak-ng"

    def __init__(
        self,
        *,
        library_path: str | None = None,
        data_path: str | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        if library_path is None or data_path is None:
            import espeakng_loader

            library_path = library_path or str(espeakng_loader.get_library_path())
            data_path = data_path or str(espeakng_loader.get_data_path())
        self._library_path = library_path
        self._data_path = data_path
        self._timeout_s = timeout_s
        probe = self._run({"mode": "probe", "voices": sorted(set(ESPEAK_VOICES.values()))})
        report = json.loads(probe.decode("utf-8"))
        self.sample_rate: int = int(report["sample_rate"])
        status: dict[str, int] = report["status"]
        self._voices = {
            language: voice for language, voice in ESPEAK_VOICES.items() if status.get(voice) == 0
        }
        variants_dir = Path(data_path) / "voices" / "!v"
        wanted = {*_ESPEAK_VARIANTS.values(), *_ESPEAK_WHISPER_VARIANTS.values()}
        missing = sorted(v for v in wanted if not (variants_dir / v).is_file())
        if missing:
            raise VoiceSynthesisError(f"espeak-ng data lacks the variants {', '.join(missing)}")

    def voices(self) -> dict[str, str]:
        """BCP-47 language → espeak-ng voice, for the catalogue voices present in the data."""
        return dict(self._voices)

    def synthesize(
        self,
        text: str,
        *,
        language: str,
        gender: str,
        variant: str | None,
        rate_wpm: float,
        pitch: float,
    ) -> tuple[Signal, int]:
        """Speak ``text`` at the library's native rate (22050 Hz).

        Pitch: up to -8.1..+9.3 semitones through espeakPITCH (with the intonation range
        scaled alongside, calibrated on the median F0), which keeps formants and duration. The
        rest is a resampling ("tape") shift of the whole voice, for which the text is spoken
        proportionally slower or faster first, so the duration still holds (within the
        80..450 wpm rate limits).
        """
        voice = self._voices.get(language)
        if voice is None:
            raise UnknownVoiceLanguage(language, list(self._voices))
        if gender not in _ESPEAK_VARIANTS:
            raise ValueError(f"unknown voice gender {gender!r}; allowed: {', '.join(GENDERS)}")
        if variant is None:
            espeak_variant = _ESPEAK_VARIANTS[gender]
        elif variant == "whisper":
            espeak_variant = _ESPEAK_WHISPER_VARIANTS[gender]
        else:
            raise ValueError(f"unknown voice variant {variant!r}; allowed: None, 'whisper'")
        # No NUL (it ends the C string) and no lone surrogates (not encodable as UTF-8).
        clean = text.replace("\0", " ").encode("utf-8", "replace").decode("utf-8")
        espeak_pitch, tape_semitones = _espeak_pitch(pitch)
        tape_factor = 2 ** (tape_semitones / 12)
        low, high = _ESPEAK_RATE_LIMITS
        rate = round(min(max(rate_wpm / tape_factor, low), high))
        pitch_ratio = 2 ** ((pitch - tape_semitones) / 12)
        intonation = round(min(max(_ESPEAK_RANGE[gender] * pitch_ratio, 0), 100))
        request = {
            "mode": "synth",
            "voice": f"{voice}+{espeak_variant}",
            "rate": rate,
            "pitch": espeak_pitch,
            "range": intonation,
            "seed": zlib.crc32(clean.encode("utf-8")),
            "text": clean,
        }
        payload = self._run(request)
        (sample_rate,) = struct.unpack("=i", payload[:4])
        samples = np.frombuffer(payload[4:], dtype=np.int16).astype(np.float32) / 32768.0
        if tape_semitones:
            samples = stretch_pitch(samples, tape_semitones)
        top = float(np.max(np.abs(samples))) if samples.size else 0.0
        if top > 1.0:  # resampling can overshoot full scale a little
            samples = samples / top
        return samples.astype(np.float32), int(sample_rate)

    def _run(self, request: dict[str, object]) -> bytes:
        command = [sys.executable, "-I", "-S", "-c", _CHILD_SOURCE]
        try:
            done = subprocess.run(
                [*command, self._library_path, self._data_path],
                input=json.dumps(request).encode("utf-8"),
                capture_output=True,
                timeout=self._timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise VoiceSynthesisError(f"espeak-ng took longer than {self._timeout_s} s") from exc
        except OSError as exc:
            raise VoiceSynthesisError(f"espeak-ng could not start: {exc}") from exc
        if done.returncode != 0:
            reason = _CHILD_EXIT_REASONS.get(done.returncode, f"exit status {done.returncode}")
            detail = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise VoiceSynthesisError(f"espeak-ng {reason}: {detail}")
        return done.stdout


_default_engine: EspeakEngine | None = None
_default_engine_lock = threading.Lock()


def default_engine() -> VoiceEngine:
    """The espeak-ng engine, created on first use and shared by the process."""
    global _default_engine
    with _default_engine_lock:
        if _default_engine is None:
            _default_engine = EspeakEngine()
        return _default_engine


# --- languages ---------------------------------------------------------------------------------


def available_languages(engine: VoiceEngine | None = None) -> list[str]:
    """The BCP-47 codes the engine (default: espeak-ng) can speak, sorted."""
    return sorted((engine or default_engine()).voices())


def resolve_language(language: str, engine: VoiceEngine | None = None) -> str:
    """The engine's BCP-47 code for ``language``: case and ``_`` do not matter, and a bare
    language (``fr``) stands for its only regional voice. Raises ``UnknownVoiceLanguage``."""
    return resolve(language, available_languages(engine))


# --- rendering ---------------------------------------------------------------------------------


def _seed(text: str, params: VoiceParams) -> int:
    digest = hashlib.sha256(f"{text}\x1f{params!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def render_voice(
    text: str,
    params: VoiceParams,
    *,
    sample_rate: int = 48000,
    engine: VoiceEngine | None = None,
) -> Signal:
    """Speak ``text`` with ``params``: float32 ``(frames, 1)`` at ``sample_rate``, peak <= 1.

    Raises ``UnknownVoiceLanguage`` for a language the engine lacks, ``ValueError`` for an empty
    text and ``VoiceSynthesisError`` when the engine fails.
    """
    if not text.strip():
        raise ValueError("text to speak is empty")
    engine = engine or default_engine()
    language = resolve_language(params.language, engine)
    emotion = EMOTIONS[params.emotion]
    whispering = params.type == "whisper" or params.emotion == "whisper"

    speed = params.speed * emotion.speed
    if params.gender == "narrator":
        speed *= _NARRATOR_PACE
    if params.type == "sung":
        speed *= _SUNG_PACE
    semitones = params.pitch_semitones + emotion.pitch_semitones
    if params.style == "deep_space":
        semitones += effects.DEEP_SPACE_PITCH_SEMITONES

    voice, native_rate = engine.synthesize(
        text,
        language=language,
        gender=params.gender,
        variant="whisper" if whispering else None,
        rate_wpm=NORMAL_RATE_WPM * speed,
        pitch=semitones,
    )
    voice = np.asarray(voice, dtype=np.float32).reshape(-1)

    if params.type == "sung":
        voice = effects.vibrato(voice, native_rate)
        voice = effects.reverb(voice, native_rate, decay_s=0.8, wet=0.15)
    elif params.type == "styled" and params.style is not None:
        voice = effects.apply_style(voice, native_rate, params.style, seed=_seed(text, params))

    voice = effects.normalize_peak(voice, REFERENCE_PEAK_DB)
    voice = voice * effects.db_to_gain(emotion.volume_db + VOICE_TYPES[params.type])
    voice = resample(voice.astype(np.float32), native_rate, sample_rate)
    if whispering:
        voice = effects.noise_gate(voice, sample_rate, WHISPER_GATE_DB)
    top = effects.peak(voice)
    if top > 1.0:
        voice = voice / top
    return voice.astype(np.float32).reshape(-1, 1)
