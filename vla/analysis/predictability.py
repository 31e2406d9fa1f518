"""How much of the future trajectory the prompt's numbers determine, measured with tabular learners.

Besides the images, the model reads the ego history (the rows the prompt quotes), its speed,
acceleration and yaw rate, and the navigation command. This bench fits scikit-learn learners on
exactly those numbers (the train split) and scores them on the test split by ADE over 0-3 s,
beside the kinematic priors, so that a trained model's trajectory can be judged against what
the text alone allows:

- ``ridge``: linear regression of the offsets from the codec's prior (damped acceleration);
- ``boosted trees, mean``: gradient-boosted trees regressing those offsets at 1, 2 and 3 s
  (linear in between from t0): an estimate of the conditional mean, the target of a decoder that
  averages (expected-residual decoding);
- ``boosted trees, mode, K entries``: per trajectory token over the first 3 s, gradient-boosted
  trees classifying the token of a K-entry k-means segment codec (the default codec's settings,
  fitted on the train split), the most likely token at each position decoded from the ego state:
  a stand-in for greedy decoding by a model that has learned the likeliest token at each
  position for that codebook size (greedy decoding also conditions on the tokens already
  written; these classifiers do not). The later tokens are entry 0.

The features (:func:`vla.model.prompt_features.prompt_features`) are rounded as the prompt
writes them (history, speed and acceleration to 0.1, yaw rate to 0.01). ``with_decisions``
adds the labelled meta-action to the features: the ceiling when the decision is known.
Simplifications: the trees see numbers, not images, so the other vehicles count only through
what the ego's own motion reveals; the tree settings are scikit-learn's defaults with
``max_iter`` rounds, not tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vla.model.prompt_features import prompt_features
from vla.trajectory.baselines import constant_velocity, damped_acceleration
from vla.trajectory.data import read_spec, split_from_dataset
from vla.trajectory.registry import DEFAULT_CODEC, default_codec

HORIZON_S = 3.0
KNOTS_S = (1.0, 2.0, 3.0)


@dataclass(frozen=True)
class PredictabilityConfig:
    data: Path
    codebook_sizes: tuple[int, ...] = (16, 64)
    with_decisions: bool = False
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        object.__setattr__(self, "codebook_sizes", tuple(int(k) for k in self.codebook_sizes))
        if any(k < 2 for k in self.codebook_sizes):
            raise ValueError(f"codebook_sizes must each be >= 2, got {self.codebook_sizes}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


def _ade(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(pred[..., :2] - true[..., :2], axis=-1).mean())


def interpolate_knots(knots: np.ndarray, hz: float, n: int) -> np.ndarray:
    """(N, len(KNOTS_S)) values at the knots -> (N, n) at 1/hz .. n/hz, zero at t0."""
    t = np.arange(1, n + 1) / hz
    xs = np.array([0.0, *KNOTS_S])
    return np.stack([np.interp(t, xs, np.concatenate([[0.0], k])) for k in knots])


def _decode(codec, tokens: np.ndarray, egos, n: int) -> np.ndarray:
    """Decode predicted tokens without the labelled intents (a predictor has no decision)."""
    return np.stack([codec.decode([int(i) for i in t],
                                  replace(e, intent_lon=None, intent_lat=None))[:n]
                     for t, e in zip(tokens, egos, strict=True)])


def _mode_row(k: int, config: PredictabilityConfig, spec, train, test, x_train: np.ndarray,
              x_test: np.ndarray) -> dict[str, Any]:
    """The ``boosted trees, mode, K entries`` row: a K-entry default codec fitted on train, one
    classifier per token position over the first 3 s, the likeliest token decoded."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    n = int(round(HORIZON_S * spec.hz))
    true = test.trajectories[:, :n, :2]
    codec = default_codec(hz=spec.hz, horizon_s=spec.horizon_s, codebook_size=k)
    codec.fit(train.trajectories, train.egos)
    tok_train = np.array([codec.encode(t, e) for t, e in zip(train.trajectories, train.egos,
                                                              strict=True)])
    tok_test = np.array([codec.encode(t, e) for t, e in zip(test.trajectories, test.egos,
                                                             strict=True)])
    per_3s = int(np.ceil(tok_train.shape[1] * HORIZON_S / spec.horizon_s))
    guess = np.zeros_like(tok_test)
    for j in range(per_3s):
        classes = np.unique(tok_train[:, j])
        if len(classes) == 1:
            guess[:, j] = classes[0]
            continue
        clf = HistGradientBoostingClassifier(max_iter=config.max_iter, random_state=config.seed)
        guess[:, j] = clf.fit(x_train, tok_train[:, j]).predict(x_test)
    return {"predictor": f"boosted trees, mode, {k} entries",
            "ade_3s": _ade(_decode(codec, guess, test.egos, n), true),
            "round_trip_ade_3s": _ade(_decode(codec, tok_test, test.egos, n), true),
            "share_entry_0": float(np.mean(guess[:, :per_3s] == 0)),
            "share_entry_0_label": float(np.mean(tok_test[:, :per_3s] == 0))}


def run_predictability(config: PredictabilityConfig,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit on the train split, score on the test split: one row of ADE@3 s per predictor."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    from vla.data.build import load_dataset_dir

    dataset, _meta = load_dataset_dir(config.data)
    spec = read_spec(config.data)
    for split in ("train", "test"):
        if split not in dataset or len(dataset[split]) == 0:
            raise ValueError(f"{config.data}: the {split!r} split is missing or empty")
    train, test = (split_from_dataset(dataset[s], spec) for s in ("train", "test"))
    commands = sorted(set(dataset["train"]["command"]))
    x_train, x_test = (prompt_features(dataset[s], commands, config.with_decisions)
                       for s in ("train", "test"))
    n = int(round(HORIZON_S * spec.hz))
    true = test.trajectories[:, :n, :2]

    tau_s = DEFAULT_CODEC[1]["prior_tau_s"]  # the default codec's prior

    def prior(split):
        return np.stack([damped_acceleration(e, spec, tau_s)[:n, :2] for e in split.egos])

    prior_train, prior_test = prior(train), prior(test)
    offsets = (train.trajectories[:, :n, :2] - prior_train).reshape(len(train), -1)
    rows = [{"predictor": "constant velocity",
             "ade_3s": _ade(np.stack([constant_velocity(e, spec)[:n] for e in test.egos]), true)},
            {"predictor": "damped-acceleration prior", "ade_3s": _ade(prior_test, true)}]

    ridge = Ridge(alpha=1.0).fit(x_train, offsets)
    rows.append({"predictor": "ridge",
                 "ade_3s": _ade(prior_test + ridge.predict(x_test).reshape(-1, n, 2), true)})

    knot_idx = [int(round(k * spec.hz)) - 1 for k in KNOTS_S]
    mean = np.zeros_like(prior_test)
    for axis in range(2):
        knots = np.stack([HistGradientBoostingRegressor(max_iter=config.max_iter,
                                                        random_state=config.seed)
                          .fit(x_train, offsets[:, i * 2 + axis]).predict(x_test)
                          for i in knot_idx], axis=1)
        mean[..., axis] = interpolate_knots(knots, spec.hz, n)
    rows.append({"predictor": "boosted trees, mean", "ade_3s": _ade(prior_test + mean, true)})
    if log:
        log(f"continuous learners done ({len(train)} train, {len(test)} test samples)")

    for k in config.codebook_sizes:
        rows.append(_mode_row(k, config, spec, train, test, x_train, x_test))
        if log:
            log(f"{k} entries: ADE@3s {rows[-1]['ade_3s']:.3f} m")
    return {"data": str(config.data), "n_train": len(train), "n_test": len(test),
            "with_decisions": config.with_decisions, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    """A Markdown table of the rows."""
    lines = [f"Data: {result['data']} ({result['n_train']} train / {result['n_test']} test "
             f"samples; features: the prompt's numbers and command"
             + (" + the labelled meta-action" if result["with_decisions"] else "") + ")", "",
             "| predictor | ADE@3 s (m) | codec round trip (m) | entry 0 predicted / labelled |",
             "|---|---|---|---|"]
    for r in result["rows"]:
        rt = f"{r['round_trip_ade_3s']:.3f}" if "round_trip_ade_3s" in r else "–"
        zero = (f"{r['share_entry_0']:.2f} / {r['share_entry_0_label']:.2f}"
                if "share_entry_0" in r else "–")
        lines.append(f"| {r['predictor']} | {r['ade_3s']:.3f} | {rt} | {zero} |")
    return "\n".join(lines)
