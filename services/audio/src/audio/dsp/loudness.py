"""Streaming integrated loudness (ITU-R BS.1770-4) and sample peak.

The K-weighting biquads come from pyloudnorm's filter definitions (RBJ cookbook designs, for any
sample rate), so a streamed measurement equals ``pyloudnorm.Meter(rate).integrated_loudness`` on
the whole signal. Only complete 400 ms gating blocks count (BS.1770); a signal shorter than one
block, or silent, measures ``-inf``.
"""

from __future__ import annotations

import math
from array import array
from collections import deque

import numpy as np
import pyloudnorm
from numpy.typing import NDArray
from scipy import signal

BLOCK_SECONDS = 0.4
HOPS_PER_BLOCK = 4  # 75 % overlap: a block every 100 ms
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
# BS.1770 channel weights in L, R, C, Ls, Rs order; channels past the fifth weigh 1.0.
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def k_weighting_sos(sample_rate: int) -> NDArray[np.float64]:
    """The two K-weighting stages (high shelf, then RLB high-pass) as second-order sections."""
    meter = pyloudnorm.Meter(sample_rate)  # builds its K-weighting filters for this rate
    stages = []
    for stage in meter._filters.values():
        b, a = stage.generate_coefficients()
        stages.append(np.concatenate([np.asarray(b) * stage.passband_gain, np.asarray(a)]))
    return np.asarray(stages, dtype=np.float64)


def _to_2d(block: NDArray[np.floating], channels: int) -> NDArray[np.floating]:
    data = block.reshape(-1, 1) if block.ndim == 1 else block
    if data.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got {data.shape[1]}")
    return data


class LoudnessMeter:
    """Integrated loudness and peak of a signal fed in blocks of any size.

    The filter state (sosfilt ``zi``) and the part of the current 100 ms hop are carried between
    calls; the two-stage gate needs every gating block's power, kept as one float per 100 ms
    (288 KB for ten hours).
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        if sample_rate <= 0 or channels <= 0:
            raise ValueError("sample_rate and channels must be positive")
        self.sample_rate = sample_rate
        self.channels = channels
        self.peak = 0.0
        self.frames = 0
        self._sos = k_weighting_sos(sample_rate)
        self._zi = np.zeros((self._sos.shape[0], 2, channels))
        self._weights = np.array(
            [CHANNEL_WEIGHTS[c] if c < len(CHANNEL_WEIGHTS) else 1.0 for c in range(channels)]
        )
        self._block_frames = round(BLOCK_SECONDS * sample_rate)
        self._hop_index = 0  # index of the hop being filled
        self._hop_energy = np.zeros(channels)  # sum of squares in the current hop
        self._hops: deque[float] = deque(maxlen=HOPS_PER_BLOCK)  # weighted energy, last hops
        self._blocks = array("d")  # channel-weighted mean square of each gating block

    def add(self, block: NDArray[np.floating]) -> None:
        """Feed the next frames, shaped ``(frames, channels)`` (or ``(frames,)`` for mono)."""
        data = _to_2d(block, self.channels)
        if data.shape[0] == 0:
            return
        self.peak = max(self.peak, float(np.max(np.abs(data))))
        filtered, self._zi = signal.sosfilt(self._sos, data.astype(np.float64), axis=0, zi=self._zi)
        squared = np.square(filtered)
        start = self.frames
        self.frames += data.shape[0]
        offset = 0
        while offset < squared.shape[0]:
            hop_end = self._boundary(self._hop_index + 1)
            take = min(hop_end - (start + offset), squared.shape[0] - offset)
            self._hop_energy += squared[offset : offset + take].sum(axis=0)
            offset += take
            if start + offset == hop_end:
                self._close_hop()

    def _boundary(self, hop: int) -> int:
        """Absolute frame index where hop number ``hop`` starts: round(hop * rate / 10)."""
        return (hop * self.sample_rate + 5) // 10

    def _close_hop(self) -> None:
        self._hops.append(float(self._hop_energy @ self._weights))
        self._hop_energy = np.zeros(self.channels)
        self._hop_index += 1
        if len(self._hops) == HOPS_PER_BLOCK:
            self._blocks.append(sum(self._hops) / self._block_frames)

    def integrated(self) -> float:
        """Gated integrated loudness in LUFS; ``-inf`` when no block passes the gates."""
        if not self._blocks:
            return -math.inf
        weighted = np.frombuffer(self._blocks, dtype=np.float64)
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10.0 * np.log10(weighted)
        above_absolute = loudness >= ABSOLUTE_GATE_LUFS
        if not above_absolute.any():
            return -math.inf
        relative = (
            -0.691 + 10.0 * math.log10(float(weighted[above_absolute].mean())) + RELATIVE_GATE_LU
        )
        gated = (loudness > relative) & (loudness > ABSOLUTE_GATE_LUFS)
        if not gated.any():
            return -math.inf
        return -0.691 + 10.0 * math.log10(float(weighted[gated].mean()))

    @property
    def peak_dbfs(self) -> float:
        """The sample peak in dBFS (``-inf`` for silence)."""
        return 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf
