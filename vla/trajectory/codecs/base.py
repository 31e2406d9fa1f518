"""The codec interface every trajectory codec implements.

A codec turns a trajectory (``(T, 3)`` metres / radians, ego frame at t0) plus the ego state at
t0 into a sequence of integer ids in ``[0, vocab_size)`` and back. Fixed-length codecs always
write exactly ``num_tokens`` ids, which the output grammar needs. Learned codecs must be
``fit`` before use; every codec can be fitted (for some it only records ranges or statistics).
``save(dir)`` writes ``trajectory_codec.json`` (name, config, fitted flag) and
``trajectory_codec.npz`` (the fitted arrays) beside a model; ``load_codec(dir)`` reads them.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vla.trajectory.types import EgoState, TrajectorySpec, as_trajectory, estimate_ego_state

CONFIG_FILE = "trajectory_codec.json"
STATE_FILE = "trajectory_codec.npz"
FORMAT_VERSION = 1
_BOUND_SAMPLES = 128  # fit-set trajectories whose round trip sets fit_max_error_m


@dataclasses.dataclass(frozen=True)
class CodecConfig:
    """Fields every codec shares: the trajectory's sampling rate and horizon."""

    hz: float = 10.0
    horizon_s: float = 6.0

    def __post_init__(self) -> None:
        self.spec  # noqa: B018 -- validates hz and horizon_s

    @property
    def spec(self) -> TrajectorySpec:
        return TrajectorySpec(hz=self.hz, horizon_s=self.horizon_s)


def _check_positive_int(config: object, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, "
                             f"got {value!r}")


def _check_choice(config: object, name: str, choices: Sequence[str]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {list(choices)}, "
                         f"got {value!r}")


class TrajectoryCodec(ABC):
    """Base class: subclasses set ``name`` and ``config_cls`` and implement the abstract parts."""

    name: ClassVar[str]
    config_cls: ClassVar[type[CodecConfig]]
    fixed_length: ClassVar[bool] = True
    #: True when ``fit`` must run before encode / decode.
    needs_fit: ClassVar[bool] = True

    def __init__(self, config: CodecConfig | None = None) -> None:
        config = config if config is not None else self.config_cls()
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{type(self).__name__} needs a {self.config_cls.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        self.spec = config.spec
        self.fitted = False
        #: largest round-trip point error (m) seen on the fit set; see ``stated_bound_m``.
        self.fit_max_error_m = float("nan")

    # -- what subclasses implement -------------------------------------------------------
    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Ids are in ``[0, vocab_size)``."""

    @property
    @abstractmethod
    def num_tokens(self) -> int:
        """Ids per trajectory (for a variable-length codec: the most it writes)."""

    @abstractmethod
    def _fit(self, trajectories: np.ndarray, egos: list[EgoState]) -> None: ...

    @abstractmethod
    def _encode(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray: ...

    @abstractmethod
    def _decode(self, ids: np.ndarray, ego: EgoState) -> np.ndarray: ...

    def _state(self) -> dict[str, np.ndarray]:
        """The fitted arrays to save."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027
        """Restore what ``_state`` returned (nothing by default)."""

    def analytic_bound_m(self) -> float | None:
        """A guaranteed error bound (m) where the algorithm gives one, else None."""
        return None

    def entry_features(self) -> np.ndarray | None:
        """``(vocab_size, D)``: each id as a point of a space where averaging means something,
        for codecs whose ids are entries of one codebook; None for the others (default)."""
        return None

    # -- the public interface --------------------------------------------------------------
    def fit(self, trajectories: Sequence[np.ndarray] | np.ndarray,
            ego_states: Sequence[EgoState] | None = None) -> TrajectoryCodec:
        """Fit on training trajectories (ego states estimated from the samples if not given).

        Afterwards ``fit_max_error_m`` holds the largest round-trip point error on (the first
        128 of) this set.
        """
        trajs = np.stack([as_trajectory(t, self.spec) for t in trajectories])
        if len(trajs) == 0:
            raise ValueError("fit needs at least one trajectory")
        egos = self._egos(trajs, ego_states)
        self._fit(trajs, egos)
        self.fitted = True
        errs = [np.max(np.linalg.norm(self.round_trip(t, e)[:, :2] - t[:, :2], axis=1))
                for t, e in zip(trajs[:_BOUND_SAMPLES], egos[:_BOUND_SAMPLES], strict=True)]
        self.fit_max_error_m = float(np.max(errs))
        return self

    @property
    def stated_bound_m(self) -> float:
        """The round-trip point-error bound this codec states for feasible trajectories.

        The analytic bound where one exists; otherwise an in-distribution bound: twice the
        largest point error measured on the fit set, plus 5 cm.
        """
        analytic = self.analytic_bound_m()
        if analytic is not None:
            return analytic
        self._require_fit()
        return 2.0 * self.fit_max_error_m + 0.05

    def encode(self, trajectory: np.ndarray, ego_state: EgoState) -> np.ndarray:
        """Trajectory ``(T, 3)`` -> int64 ids (exactly ``num_tokens`` if ``fixed_length``)."""
        self._require_fit()
        traj = as_trajectory(trajectory, self.spec)
        ids = np.asarray(self._encode(traj, self._ego(ego_state)), dtype=np.int64)
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray, ego_state: EgoState) -> np.ndarray:
        """Ids -> trajectory ``(T, 3)`` in metres / radians, ego frame at t0."""
        self._require_fit()
        arr = self.check_ids(ids)
        out = self._decode(arr, self._ego(ego_state))
        if not np.all(np.isfinite(out)):  # a bug, never a user error
            raise RuntimeError(f"{self.name} decoded a non-finite trajectory from {arr.tolist()}")
        return out

    def round_trip(self, trajectory: np.ndarray, ego_state: EgoState) -> np.ndarray:
        return self.decode(self.encode(trajectory, ego_state), ego_state)

    def check_ids(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Validate ids: integers, in range, and the right count. Returns an int64 array."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"{self.name}: ids must be a 1-D sequence, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer) and (
                not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr))):
            raise ValueError(f"{self.name}: ids must be integers, got {arr.tolist()}")
        arr = arr.astype(np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= self.vocab_size))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self.name}: id {int(arr[i])} at position {i} is out of range; "
                             f"valid ids are 0..{self.vocab_size - 1}")
        if self.fixed_length and len(arr) != self.num_tokens:
            raise ValueError(f"{self.name}: expected exactly {self.num_tokens} ids, "
                             f"got {len(arr)}")
        if not self.fixed_length and not 1 <= len(arr) <= self.num_tokens:
            raise ValueError(f"{self.name}: expected 1..{self.num_tokens} ids, got {len(arr)}")
        return arr

    def describe(self) -> str:
        """A short label for tables, e.g. ``unicycle(rate_hz=2.0, bins=3000)``."""
        skip = {f.name for f in dataclasses.fields(CodecConfig)}
        parts = [f"{f.name}={getattr(self.config, f.name)}"
                 for f in dataclasses.fields(self.config) if f.name not in skip]
        return f"{self.name}({', '.join(parts)})"

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``trajectory_codec.json`` and ``trajectory_codec.npz`` into ``directory``."""
        self._require_fit()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "codec": self.name,
            "config": dataclasses.asdict(self.config),
            "vocab_size": self.vocab_size,
            "num_tokens": self.num_tokens,
            "fixed_length": self.fixed_length,
            "fit_max_error_m": self.fit_max_error_m,
        }
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        np.savez(out / STATE_FILE, **self._state())
        return out

    @classmethod
    def from_saved(cls, meta: dict[str, Any], state: dict[str, np.ndarray]) -> TrajectoryCodec:
        codec = cls(cls.config_cls(**meta["config"]))
        codec._set_state(state)
        codec.fitted = True
        codec.fit_max_error_m = float(meta.get("fit_max_error_m", float("nan")))
        return codec

    # -- helpers ----------------------------------------------------------------------------
    def _require_fit(self) -> None:
        if self.needs_fit and not self.fitted:
            raise RuntimeError(f"{self.name}: call fit(trajectories) or load a saved codec first")

    def _egos(self, trajs: np.ndarray, egos: Sequence[EgoState] | None) -> list[EgoState]:
        if egos is None:
            return [estimate_ego_state(t, self.spec.hz) for t in trajs]
        if len(egos) != len(trajs):
            raise ValueError(f"got {len(trajs)} trajectories but {len(egos)} ego states")
        return [self._ego(e) for e in egos]

    @staticmethod
    def _ego(ego: EgoState) -> EgoState:
        if not isinstance(ego, EgoState):
            raise TypeError(f"ego_state must be an EgoState, got {type(ego).__name__}")
        return ego
