"""A learned codebook of motion segments (k-means, as AutoVLA), chained from the ego state.

The horizon is cut into segments of ``segment_s`` seconds (one token each; ``segment_s`` equal
to the horizon gives a single-token, whole-trajectory vocabulary as in Hydra-MDP / VADv2). A
codebook entry is an *ego-state-conditioned residual*: in the frame of the pose at the segment's
start, the offsets of its samples from the kinematic prior, driving straight on from the current
speed (``(x - s_prior(t), y)``), their yaw change, and the change of speed at its end beyond the
prior's. The prior is ``prior``: ``constant_velocity`` (``s_prior = v t``),
``damped_acceleration``, the ego's measured acceleration at t0 fading out with time constant
``prior_tau_s`` (``a(t) = a0 exp(-t / tau)``; a car speeding up or braking now mostly goes on
doing so for a moment, rarely for seconds), or ``meta_action``, which fades the measured
acceleration into the typical acceleration of the longitudinal meta-action the trajectory is
written under (``a(t) = a_c + (a0 - a_c) exp(-t / tau)``) and turns at the typical yaw rate
``w_c`` of its lateral meta-action, along constant-curvature arcs (``a_c`` and ``w_c`` fitted
per class as the median mean acceleration or yaw rate over the first 3 s of the training
trajectories labelled with it; :attr:`EgoState.intent_lon` / ``intent_lat`` carry the classes:
the label when encoding, the model's written meta-action when decoding; without them
``a_c = w_c = 0``, the damped prior). Residuals are then measured along the bent prior path.
Under ``meta_action`` a model
that writes "decelerate" and then every token at entry 0 plans a deceleration: what it
decides, and so what it sees, reaches its plan even before it learns the residual tokens.
Decoding chains entries from the ego pose, speed and
acceleration: each adds its residual to the prior's motion from the current decoded state, then
hands its end pose, speed and the prior's decayed acceleration to the next. Because the residual
of braking or turning barely depends on speed, one codebook serves 0 to 35 m/s.

Fitting runs k-means (scikit-learn's mini-batch k-means) over the residuals of all training
segments, cut at the true poses (teacher forcing), for ``codebook_size - 1`` entries; entry 0 is
the exact zero residual (carry on with the prior: at the current speed and heading under
``constant_velocity``; stay put when stopped).
Encoding is a beam search: from the decoded state, every entry is rolled out for the next
segment, scored by its squared position error against the trajectory plus heading and speed
mismatch at its end, and the ``beam`` best partial sequences are kept, so that later segments
correct earlier quantisation errors. With ``zero_tolerance_m`` > 0, entry 0 gets a bonus worth
that mean error over the segment: steady driving is then written as entry 0 again and again
instead of as whichever of several near-zero entries is closest by a few centimetres, which
costs a little reconstruction error and makes the token sequence far easier for a model to
learn (the same trade as rate-distortion-optimised quantisation in video coding).

Simplifications: residual offsets do not scale with speed (a decelerating entry learned at
speed can ask a slow vehicle to reverse: the decoder then stops it instead); the codebook is
only as good as the coverage of the training set.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vla.trajectory.codecs.base import (
    CodecConfig,
    TrajectoryCodec,
    _check_choice,
    _check_positive_int,
)
from vla.trajectory.codecs.unicycle import path_speeds
from vla.trajectory.kinematics import to_global, to_local
from vla.trajectory.types import EgoState, wrap_angle

_YAW_SCALE_M = 5.0  # metres per radian when yaw residuals enter the k-means distance
PRIORS = ("constant_velocity", "damped_acceleration", "meta_action")
_INTENT_WINDOW_S = 3.0  # the window over which a meta-action's typical acceleration is fitted


@dataclasses.dataclass(frozen=True)
class KMeansSegmentConfig(CodecConfig):
    segment_s: float = 0.5
    codebook_size: int = 2048
    beam: int = 4
    kmeans_iters: int = 30
    seed: int = 0
    zero_tolerance_m: float = 0.0
    prior: str = "constant_velocity"
    prior_tau_s: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "codebook_size", "beam", "kmeans_iters")
        if not self.segment_s > 0:
            raise ValueError(f"KMeansSegmentConfig.segment_s must be > 0, got {self.segment_s}")
        if not self.zero_tolerance_m >= 0:
            raise ValueError("KMeansSegmentConfig.zero_tolerance_m must be >= 0, got "
                             f"{self.zero_tolerance_m}")
        self.spec.steps_per(1.0 / self.segment_s, what="1 / segment_s")
        _check_choice(self, "prior", PRIORS)
        if not self.prior_tau_s > 0:
            raise ValueError(f"KMeansSegmentConfig.prior_tau_s must be > 0, got "
                             f"{self.prior_tau_s}")


def _table_arrays(name: str, table: dict[str, float]) -> dict[str, np.ndarray]:
    """A ``{class: value}`` table as two arrays for ``np.savez`` (no pickled objects)."""
    return {f"{name}_classes": np.array(sorted(table), dtype=np.str_),
            f"{name}_values": np.array([table[k] for k in sorted(table)], dtype=np.float64)}


def _table_of(name: str, state: dict[str, np.ndarray]) -> dict[str, float]:
    """The table :func:`_table_arrays` saved ({} when the state has none)."""
    if f"{name}_classes" not in state:
        return {}
    return {str(k): float(v) for k, v in zip(state[f"{name}_classes"], state[f"{name}_values"],
                                             strict=True)}


def _bend(local: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Segment-frame offsets ``(along, lateral)`` measured along a path whose heading turns by
    ``heading`` -> segment-frame points: the along-track distance becomes the chord of a
    constant-curvature arc (length ``along * sinc(heading / 2)``, direction ``heading / 2``).
    Exact for a constant curvature (a constant yaw rate at a constant speed); an approximation
    when the speed changes within the segment."""
    half = heading / 2.0
    x = local[..., 0] * np.sinc(half / np.pi)
    c, s = np.cos(half), np.sin(half)
    return np.stack([c * x - s * local[..., 1], s * x + c * local[..., 1]], axis=-1)


def _unbend(points: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_bend`."""
    half = heading / 2.0
    c, s = np.cos(half), np.sin(half)
    x = c * points[..., 0] + s * points[..., 1]
    y = -s * points[..., 0] + c * points[..., 1]
    return np.stack([x / np.sinc(half / np.pi), y], axis=-1)


class KMeansSegmentCodec(TrajectoryCodec):
    name = "kmeans_segment"
    config_cls = KMeansSegmentConfig
    config: KMeansSegmentConfig

    def __init__(self, config: KMeansSegmentConfig | None = None) -> None:
        super().__init__(config)
        self.seg_len = self.spec.steps_per(1.0 / self.config.segment_s, what="1 / segment_s")
        self.n_segments = self.spec.num_points // self.seg_len
        self.seg_times = self.spec.dt * np.arange(1, self.seg_len + 1)
        # entries: (K, L, 3) residual x, y, yaw per sample; (K,) speed change
        self.residuals = np.zeros((0, self.seg_len, 3))
        self.dspeed = np.zeros(0)
        # the typical acceleration of each longitudinal meta-action and yaw rate of each
        # lateral one seen in the fit set, by name (prior "meta_action"; the codec does not
        # know the meta-action vocabulary, only the names its trajectories were labelled with)
        self.intent_accel: dict[str, float] = {}
        self.intent_yaw_rate: dict[str, float] = {}

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    @property
    def num_tokens(self) -> int:
        return self.n_segments

    # -- kinematic prior ---------------------------------------------------------------------
    def _initial_accel(self, ego: EgoState) -> float:
        """The prior's acceleration at t0: the ego's, or 0 under ``constant_velocity``."""
        return float(ego.accel) if self.config.prior != "constant_velocity" else 0.0

    def _targets(self, ego: EgoState) -> tuple[float, float]:
        """The acceleration and yaw rate the prior fades into: the intents' typical ones under
        ``meta_action`` (0 without an intent), else 0."""
        if self.config.prior != "meta_action":
            return 0.0, 0.0
        return (self.intent_accel.get(ego.intent_lon, 0.0),
                self.intent_yaw_rate.get(ego.intent_lat, 0.0))

    def _start_state(self, ego: EgoState) -> np.ndarray:
        """The rollout state at t0 (see :meth:`_apply`)."""
        accel, yaw_rate = self._targets(ego)
        return np.array([0.0, 0.0, 0.0, ego.speed, self._initial_accel(ego), accel, yaw_rate])

    def _fit_intents(self, trajectories: np.ndarray, egos: list[EgoState]) -> None:
        """Per meta-action class seen among the egos' intents, over its training
        trajectories: the median mean acceleration (longitudinal classes) or yaw rate (lateral
        classes) over the first 3 s (a class never seen: 0 when decoding)."""
        self.intent_accel, self.intent_yaw_rate = {}, {}
        if self.config.prior != "meta_action":
            return
        n = min(int(round(_INTENT_WINDOW_S * self.spec.hz)), self.spec.num_points)
        window = n / self.spec.hz
        speeds = path_speeds(trajectories, self.spec.hz)
        v0 = np.array([e.speed for e in egos])
        mean_accel = (speeds[:, n - 1] - v0) / window
        mean_yaw_rate = np.unwrap(trajectories[:, :n, 2], axis=1)[:, -1] / window
        for table, values, intents in (
                (self.intent_accel, mean_accel, [e.intent_lon for e in egos]),
                (self.intent_yaw_rate, mean_yaw_rate, [e.intent_lat for e in egos])):
            intents = np.array([i or "" for i in intents])
            for name in sorted(set(intents) - {""}):
                table[str(name)] = float(np.median(values[intents == name]))

    def _yaw_prior(self, yaw_rate: np.ndarray) -> np.ndarray:
        """Heading change of the prior at each sample of one segment (..., L): the lateral
        intent's typical yaw rate, held (the ego's measured yaw rate is not continued: on the
        demo data that made the prior worse, 2.21 m ADE@3s against 1.76 m, as a lane change's
        yaw reverses within seconds). Simplification: the yaw rate does not depend on speed,
        so a stopped ego with a turn intent turns on the spot at all-zero tokens."""
        return np.asarray(yaw_rate, dtype=np.float64)[..., None] * self.seg_times

    def _prior(self, v0: np.ndarray, a0: np.ndarray, a_inf: np.ndarray | float = 0.0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prior over one segment from speed ``v0`` and acceleration ``a0``, fading into
        ``a_inf`` (broadcast, ...): distance along the heading at each sample (..., L), speed
        change at its end and the acceleration handed to the next segment (...)."""
        tau, t, seg = self.config.prior_tau_s, self.seg_times, self.config.segment_s
        a_inf = np.asarray(a_inf, dtype=np.float64)[..., None]
        a0 = np.asarray(a0, dtype=np.float64)[..., None] - a_inf   # the fading part
        v0 = np.asarray(v0, dtype=np.float64)[..., None]
        dist = v0 * t + 0.5 * a_inf * t**2 + a0 * tau * (t - tau * (1.0 - np.exp(-t / tau)))
        dv = a_inf[..., 0] * seg + a0[..., 0] * tau * (1.0 - np.exp(-seg / tau))
        return dist, dv, a_inf[..., 0] + a0[..., 0] * np.exp(-seg / tau)

    # -- residual features -------------------------------------------------------------------
    def _segment_residuals(self, trajectories: np.ndarray, egos: list[EgoState]
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forced residuals of every segment: ``(N * S, L, 3)`` and ``(N * S,)``."""
        n = len(trajectories)
        speeds = path_speeds(trajectories, self.spec.hz)
        start = np.zeros((n, 4))
        start[:, 3] = [e.speed for e in egos]
        state = np.stack([self._start_state(e) for e in egos])
        accel, target, yaw_rate = (state[:, i] for i in (4, 5, 6))
        res, dv = [], []
        for j in range(self.n_segments):
            seg = trajectories[:, j * self.seg_len:(j + 1) * self.seg_len]
            x0, y0, th0 = (start[:, i, None] for i in range(3))
            prior_dist, prior_dv, next_accel = self._prior(start[:, 3], accel, target)
            heading = self._yaw_prior(yaw_rate)
            local = _unbend(to_local(seg[..., :2], x0, y0, th0), heading)
            local[..., 0] -= prior_dist
            yaw = wrap_angle(seg[..., 2] - th0 - heading)
            res.append(np.concatenate([local, yaw[..., None]], axis=-1))
            v_end = speeds[:, (j + 1) * self.seg_len - 1]
            dv.append(v_end - start[:, 3] - prior_dv)
            start = np.column_stack([seg[:, -1, 0], seg[:, -1, 1], seg[:, -1, 2], v_end])
            accel = next_accel
        return np.concatenate(res), np.concatenate(dv)

    def _features(self, res: np.ndarray, dv: np.ndarray) -> np.ndarray:
        yaw = res[..., 2] * _YAW_SCALE_M
        return np.column_stack([res[..., :2].reshape(len(res), -1), yaw,
                                dv * self.config.segment_s])

    def _fit(self, trajectories: np.ndarray, egos: list[EgoState]) -> None:
        from sklearn.cluster import MiniBatchKMeans

        self._fit_intents(trajectories, egos)
        res, dv = self._segment_residuals(trajectories, egos)
        feats = self._features(res, dv)
        k = self.config.codebook_size
        n_unique = len(np.unique(np.round(feats, 4), axis=0))
        if n_unique < k:
            raise ValueError(
                f"{self.name}: codebook_size={k} exceeds the {n_unique} distinct training "
                f"segments ({len(trajectories)} trajectories x {self.n_segments} segments); "
                "fit on more data or use a smaller codebook")
        km = MiniBatchKMeans(n_clusters=k - 1, random_state=self.config.seed, n_init=1,
                             max_iter=self.config.kmeans_iters, batch_size=max(4096, 2 * k),
                             max_no_improvement=5, reassignment_ratio=0.001)
        labels = km.fit_predict(feats) + 1     # entry 0 is reserved, see below
        # centres as member means of the raw residuals (exact units, no feature scaling)
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        sums = np.zeros((k, self.seg_len, 3))
        np.add.at(sums, labels, res)
        dsum = np.bincount(labels, weights=dv, minlength=k)
        # entry 0: exactly "carry on at the current speed and heading" (stays put when stopped)
        counts[0], sums[0], dsum[0] = 1.0, 0.0, 0.0
        empty = counts == 0
        counts[empty] = 1.0
        self.residuals = sums / counts[:, None, None]
        self.dspeed = dsum / counts
        if np.any(empty):  # keep k-means' own centre where no segment was assigned
            c = km.cluster_centers_[empty[1:]]
            L = self.seg_len
            self.residuals[empty, :, :2] = c[:, :2 * L].reshape(-1, L, 2)
            self.residuals[empty, :, 2] = c[:, 2 * L:3 * L] / _YAW_SCALE_M
            self.dspeed[empty] = c[:, -1] / self.config.segment_s

    def entry_features(self) -> np.ndarray:
        """Each entry in the k-means space: its offsets from the prior, yaw change scaled to
        metres and end-speed change times the segment length."""
        self._require_fit()
        return self._features(self.residuals, self.dspeed)

    # -- rollout -------------------------------------------------------------------------------
    def _apply(self, state: np.ndarray, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``entries`` (...) to states (..., 7: x, y, yaw, speed, the prior's
        acceleration, the one it fades into, its yaw rate): poses (..., L, 3) and end states
        (..., 7)."""
        res = self.residuals[entries]                                  # (..., L, 3)
        x0, y0, th0 = (state[..., i, None] for i in range(3))
        prior_dist, prior_dv, next_accel = self._prior(state[..., 3], state[..., 4],
                                                       state[..., 5])
        heading = self._yaw_prior(state[..., 6])
        # never reverse: a braking entry learned at speed stops a slower vehicle instead
        along = np.maximum.accumulate(np.maximum(prior_dist + res[..., 0], 0.0), axis=-1)
        local = np.stack(np.broadcast_arrays(along, res[..., 1]), axis=-1)
        xy = to_global(_bend(local, np.broadcast_to(heading, local.shape[:-1])), x0, y0, th0)
        yaw = np.broadcast_to(th0 + heading + res[..., 2], xy.shape[:-1])
        poses = np.concatenate([xy, yaw[..., None]], axis=-1)
        v_end = np.broadcast_to(np.maximum(state[..., 3] + prior_dv + self.dspeed[entries], 0.0),
                                xy.shape[:-2])
        rest = [np.broadcast_to(x, xy.shape[:-2])[..., None] for x in
                (next_accel, state[..., 5], state[..., 6])]
        end = np.concatenate([poses[..., -1, :], v_end[..., None], *rest], axis=-1)
        return poses, end

    @property
    def _zero_bonus(self) -> float:
        """Rank bonus of entry 0: a mean error of ``zero_tolerance_m`` over one segment."""
        return self.config.zero_tolerance_m ** 2 * self.seg_len

    def _encode(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        k, beam_w = self.config.codebook_size, self.config.beam
        speeds = path_speeds(trajectory[None], self.spec.hz)[0]
        states = self._start_state(ego)[None]
        costs = np.zeros(1)
        seqs = np.zeros((1, 0), dtype=np.int64)
        entries = np.arange(k)
        for j in range(self.n_segments):
            seg = trajectory[j * self.seg_len:(j + 1) * self.seg_len]
            poses, ends = self._apply(states[:, None, :], entries[None, :])  # (B, K, L, 3)
            pos_err = np.sum((poses[..., :2] - seg[:, :2]) ** 2, axis=(-1, -2))
            total = costs[:, None] + pos_err
            total[:, 0] -= self._zero_bonus  # accumulated: a run of zeros is preferred whole
            reach = states[:, 3:4] * self.config.segment_s + 1.0
            yaw_err = wrap_angle(ends[..., 2] - seg[-1, 2]) * reach
            v_err = (ends[..., 3] - speeds[(j + 1) * self.seg_len - 1]) * self.config.segment_s
            rank = total + 0.5 * yaw_err**2 + 0.5 * v_err**2
            flat = np.argsort(rank, axis=None)[:beam_w]
            b, e = np.unravel_index(flat, rank.shape)
            states, costs = ends[b, e], total[b, e]
            seqs = np.column_stack([seqs[b], e])
        return seqs[0]

    def _decode(self, ids: np.ndarray, ego: EgoState) -> np.ndarray:
        state = self._start_state(ego)
        out = []
        for i in ids:
            poses, state = self._apply(state, np.asarray(i))
            out.append(poses)
        return np.concatenate(out, axis=0)

    def _state(self) -> dict[str, np.ndarray]:
        return {"residuals": self.residuals, "dspeed": self.dspeed,
                **_table_arrays("intent_accel", self.intent_accel),
                **_table_arrays("intent_yaw_rate", self.intent_yaw_rate)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.residuals = np.asarray(state["residuals"], dtype=np.float64)
        self.dspeed = np.asarray(state["dspeed"], dtype=np.float64)
        # codecs saved before the meta-action prior have none: the damped prior
        self.intent_accel = _table_of("intent_accel", state)
        self.intent_yaw_rate = _table_of("intent_yaw_rate", state)
        for name in ("intent_accel", "intent_yaw_rate"):
            if name in state:  # an early layout: one value per class, without the names
                raise ValueError(f"{self.name}: this codec was saved with an earlier layout of "
                                 f"its meta-action prior ({name} without class names); fit "
                                 "it again")
