"""The audio mix: every audible clip summed into stereo float32 at the render's sample rate.

Audible clips are the ``audio`` clips and the sound of ``video`` clips, on tracks that are not
muted. Each is scaled by clip volume x track volume, shaped by linear ``fade_in``/``fade_out``
ramps, and placed sample-accurately at its start, reading the source from its ``in_point``.
Files are decoded with PyAV (any container/codec FFmpeg reads) and resampled with its
``AudioResampler``. Mono is copied to both channels at full level (FFmpeg's own upmix would
treat it as a centre channel, 3 dB down); more than two channels are downmixed by FFmpeg.
The mix is produced block by block (one block per video frame) and each source keeps a single
forward-reading decoder, so memory does not grow with duration. The sum is hard-clipped to
±1 (no limiter: keep the levels sensible upstream).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame

from .spec import RenderClip, RenderTrack

Samples = npt.NDArray[np.float32]
"""Shape ``(n, 2)``: stereo, interleaved by rows."""


class _Decoder:
    """Decodes one file from a source time onwards, resampled to stereo ``flt``."""

    def __init__(self, path: Path, sample_rate: int, offset: float) -> None:
        self._sr = sample_rate
        self._container = av.open(str(path))
        self._frames: Iterator[AudioFrame] | None = None
        self._chunks: list[Samples] = []
        self._buffered = 0
        self._pending_skip: int | None = None
        self._target = offset
        self._channels = 2
        self._resampler = av.AudioResampler(format="flt", layout="stereo", rate=sample_rate)
        if not self._container.streams.audio:
            return
        stream = self._container.streams.audio[0]
        if stream.codec_context.channels == 1:
            self._channels = 1
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        origin = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            origin = float(stream.start_time * stream.time_base)
        self._target = origin + offset
        if offset > 0 and stream.time_base is not None:
            self._container.seek(int(self._target / stream.time_base), stream=stream)
        self._frames = self._container.decode(stream)

    def _append(self, frames: list[AudioFrame]) -> None:
        for frame in frames:
            data = frame.to_ndarray().reshape(-1, self._channels).astype(np.float32, copy=False)
            if self._channels == 1:
                data = np.repeat(data, 2, axis=1)
            if self._pending_skip:
                dropped = min(self._pending_skip, data.shape[0])
                data = data[dropped:]
                self._pending_skip -= dropped
            if data.shape[0]:
                self._chunks.append(data)
                self._buffered += data.shape[0]

    def _decode_more(self) -> bool:
        if self._frames is None:
            return False
        frame = next(self._frames, None)
        if frame is None:
            self._append(self._resampler.resample(None))
            self._frames = None
            return False
        if self._pending_skip is None:
            # The first frame after a seek may start before the wanted time (drop samples)
            # or after it (pad with silence).
            start = frame.time if frame.time is not None else self._target
            offset = round((self._target - start) * self._sr)
            self._pending_skip = max(offset, 0)
            if offset < 0:
                self._chunks.append(np.zeros((-offset, 2), np.float32))
                self._buffered += -offset
        self._append(self._resampler.resample(frame))
        return True

    def read(self, n: int) -> Samples:
        """The next ``n`` samples (silence past the end of the file)."""
        while self._buffered < n and self._decode_more():
            pass
        out = np.zeros((n, 2), np.float32)
        filled = 0
        while filled < n and self._chunks:
            chunk = self._chunks[0]
            take = min(n - filled, chunk.shape[0])
            out[filled : filled + take] = chunk[:take]
            filled += take
            if take == chunk.shape[0]:
                self._chunks.pop(0)
            else:
                self._chunks[0] = chunk[take:]
        self._buffered -= filled
        return out

    def close(self) -> None:
        self._container.close()


class _Source:
    """One audible clip placed on the render's sample grid."""

    def __init__(self, clip: RenderClip, gain: float, sample_rate: int, origin: float) -> None:
        assert clip.path is not None
        self.path = clip.path
        self.in_point = clip.in_point
        self.gain = gain
        self.first = round((clip.start - origin) * sample_rate)
        self.length = round(clip.duration * sample_rate)
        self.last = self.first + self.length
        self.fade_in = round(clip.fade_in * sample_rate)
        self.fade_out = round(clip.fade_out * sample_rate)
        self._sr = sample_rate
        self._decoder: _Decoder | None = None
        self._position = 0  # next sample of the clip the decoder will give

    def add_into(self, out: Samples, s0: int) -> None:
        """Add this clip's part of the block that starts at render sample ``s0``."""
        a, b = max(s0, self.first), min(s0 + out.shape[0], self.last)
        if a >= b:
            return
        k0 = a - self.first
        if self._decoder is None or self._position != k0:
            self.close()
            self._decoder = _Decoder(self.path, self._sr, self.in_point + k0 / self._sr)
        samples = self._decoder.read(b - a)
        self._position = k0 + (b - a)
        k = np.arange(k0, k0 + (b - a), dtype=np.float32)
        envelope = np.full(b - a, self.gain, np.float32)
        if self.fade_in > 0:
            envelope *= np.clip(k / self.fade_in, 0.0, 1.0)
        if self.fade_out > 0:
            envelope *= np.clip((self.length - k) / self.fade_out, 0.0, 1.0)
        out[a - s0 : b - s0] += samples * envelope[:, None]

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None


class AudioMixer:
    """Mixes the timeline's sound in consecutive blocks; sample 0 is the render's start."""

    def __init__(self, tracks: Sequence[RenderTrack], sample_rate: int, origin: float) -> None:
        self.sample_rate = sample_rate
        self._sources = [
            _Source(clip, clip.volume * track.volume, sample_rate, origin)
            for track in tracks
            if not track.muted
            for clip in track.clips
            if clip.kind in ("audio", "video")
            and clip.path is not None
            and clip.duration > 0
            and clip.volume * track.volume != 0
        ]
        self._waiting = sorted(self._sources, key=lambda s: s.first, reverse=True)
        self._playing: list[_Source] = []

    def block(self, s0: int, s1: int) -> Samples:
        """Samples ``[s0, s1)`` of the mix; blocks must follow each other in time."""
        out = np.zeros((s1 - s0, 2), np.float32)
        while self._waiting and self._waiting[-1].first < s1:
            self._playing.append(self._waiting.pop())
        for source in [s for s in self._playing if s.last <= s0]:
            source.close()
            self._playing.remove(source)
        for source in self._playing:
            source.add_into(out, s0)
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def close(self) -> None:
        """Close every open decoder."""
        for source in self._sources:
            source.close()
