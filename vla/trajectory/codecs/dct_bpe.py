"""DCT + byte-pair encoding, as FAST (openpi): compress the trajectory, then learn merges.

1. Residual: ``(x - v0 t, y)`` over the horizon, the deviation from driving straight on at the
   ego speed (2 channels x T samples).
2. DCT-II (orthonormal) of each channel; coefficients divided by ``step_m`` and rounded, then
   clipped to ``+-max_abs``. Orthonormality makes the position error per sample about
   ``0.29 * step_m`` RMS per axis, whatever the trajectory.
3. The symbol alphabet spans 1.5x the largest training coefficient (at most ``max_abs``).
   Flattened lowest frequency first, channels interleaved, so the zeros of the high
   frequencies come last; each integer becomes one symbol.
4. BPE (Hugging Face ``tokenizers``) learns merges of frequent symbol runs up to ``vocab_size``.

Decoding reverses the steps; yaw follows the direction of motion. The output is
**variable length**: ``num_tokens`` is the most it writes (fitted on the training set, or
``max_tokens``); longer encodings are cut, which drops the highest frequencies (decoded as zero).
To fit a fixed-length grammar the ids must be padded, so ``fixed_length`` is False.

Simplifications: one global quantisation step (FAST scales normalised actions); the symbol
alphabet must hold every rounded coefficient, so a fine ``step_m`` needs a large alphabet.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.fft import dct, idct

from vla.trajectory.codecs.base import CodecConfig, TrajectoryCodec, _check_positive_int
from vla.trajectory.kinematics import yaw_from_positions
from vla.trajectory.types import EgoState

_CHAR_OFFSET = 0x4E00  # symbols as CJK code points: printable, no whitespace, no merges across


@dataclasses.dataclass(frozen=True)
class DctBpeConfig(CodecConfig):
    step_m: float = 0.1
    vocab_size: int = 4096
    max_abs: int = 2047
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "vocab_size", "max_abs")
        if not self.step_m > 0:
            raise ValueError(f"DctBpeConfig.step_m must be > 0, got {self.step_m}")
        if self.max_tokens is not None:
            _check_positive_int(self, "max_tokens")


class DctBpeCodec(TrajectoryCodec):
    name = "dct_bpe"
    config_cls = DctBpeConfig
    config: DctBpeConfig
    fixed_length = False

    def __init__(self, config: DctBpeConfig | None = None) -> None:
        super().__init__(config)
        self.alphabet = 0                # symbols are ints in [-alphabet, alphabet]
        self.max_len = 0
        self._tok = None
        self._tok_json = ""

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size() if self._tok is not None else self.config.vocab_size

    @property
    def num_tokens(self) -> int:
        return self.max_len

    def _symbols(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        res = trajectory[:, :2].copy()
        res[:, 0] -= ego.speed * self.spec.times
        coef = dct(res, type=2, norm="ortho", axis=0)              # (T, 2)
        q = np.rint(coef / self.config.step_m).astype(np.int64)
        return q.reshape(-1)                                          # low frequency first

    def _text(self, symbols: np.ndarray) -> str:
        a = self.alphabet
        return "".join(chr(_CHAR_OFFSET + a + int(v)) for v in np.clip(symbols, -a, a))

    def _fit(self, trajectories: np.ndarray, egos: list[EgoState]) -> None:
        from tokenizers import Tokenizer, models, trainers

        symbols = [self._symbols(t, e) for t, e in zip(trajectories, egos, strict=True)]
        largest = max(int(np.abs(s).max()) for s in symbols)
        self.alphabet = int(min(self.config.max_abs, np.ceil(1.5 * largest) + 1))  # headroom
        base = 2 * self.alphabet + 1
        if self.config.vocab_size < base:
            raise ValueError(
                f"{self.name}: vocab_size={self.config.vocab_size} is smaller than the "
                f"{base} coefficient symbols that step_m={self.config.step_m} needs; "
                "raise vocab_size, step_m or lower max_abs")
        alphabet = [chr(_CHAR_OFFSET + i) for i in range(base)]
        tok = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=self.config.vocab_size,
                                      initial_alphabet=alphabet, limit_alphabet=base,
                                      show_progress=False, special_tokens=[])
        tok.train_from_iterator((self._text(s) for s in symbols), trainer=trainer)
        self._set_tokenizer(tok.to_str())
        lengths = [len(self._tok.encode(self._text(s)).ids) for s in symbols]
        self.max_len = self.config.max_tokens or int(max(lengths))

    def _set_tokenizer(self, text: str) -> None:
        from tokenizers import Tokenizer

        self._tok_json = text
        self._tok = Tokenizer.from_str(text)
        self._id_to_text = {i: t for t, i in self._tok.get_vocab().items()}

    def _encode(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        ids = self._tok.encode(self._text(self._symbols(trajectory, ego))).ids
        return np.asarray(ids[: self.max_len], dtype=np.int64)

    def _decode(self, ids: np.ndarray, ego: EgoState) -> np.ndarray:
        text = "".join(self._id_to_text[int(i)] for i in ids)
        values = np.array([ord(c) - _CHAR_OFFSET - self.alphabet for c in text], dtype=np.float64)
        flat = np.zeros(2 * self.spec.num_points)
        n = min(len(values), len(flat))
        flat[:n] = values[:n]
        res = idct(flat.reshape(-1, 2) * self.config.step_m, type=2, norm="ortho", axis=0)
        res[:, 0] += ego.speed * self.spec.times
        return np.column_stack([res, yaw_from_positions(res, self.spec.hz)])

    def _state(self) -> dict[str, np.ndarray]:
        return {"tokenizer": np.array(self._tok_json), "alphabet": np.array(self.alphabet),
                "max_len": np.array(self.max_len)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self._set_tokenizer(str(state["tokenizer"]))
        self.alphabet = int(state["alphabet"])
        self.max_len = int(state["max_len"])
