"""The trajectory priors under the labelled meta-action: ADE@3 s of all-zero tokens.

Run after ``make demo`` (it reads ``runs/demo/data``):
``.venv/bin/python scripts/meta_action_prior_study.py validation`` (or ``test``). Each prior's
k-means segment codec (64 entries) is fitted on the train split; every sample of the split is
decoded with all-zero tokens under its labelled meta-action (an oracle of the decision), beside
constant velocity. Record: docs/results/2026-11-30-meta-action-prior.md.
"""

import dataclasses
import sys

import numpy as np

from vla.trajectory.baselines import constant_velocity
from vla.trajectory.data import load_splits
from vla.trajectory.registry import default_codec

HORIZON_STEPS = 30  # 3 s at 10 Hz


def ade(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(pred[:HORIZON_STEPS, :2] - true[:HORIZON_STEPS, :2],
                                axis=1).mean())


def main(split: str, data: str = "runs/demo/data") -> None:
    spec, splits = load_splits(data, ("train", split))
    train, held = splits["train"], splits[split]
    cv = np.mean([ade(constant_velocity(e, spec), t)
                  for t, e in zip(held.trajectories, held.egos, strict=True)])
    print(f"{split}: {len(held)} samples; constant velocity {cv:.3f}")
    for name, prior, lateral in (("damped acceleration", "damped_acceleration", True),
                                 ("meta-action, longitudinal only", "meta_action", False),
                                 ("meta-action, longitudinal + lateral", "meta_action", True)):
        def intents(egos, lateral=lateral):
            return egos if lateral else [dataclasses.replace(e, intent_lat=None) for e in egos]

        codec = default_codec(hz=spec.hz, horizon_s=spec.horizon_s, codebook_size=64,
                              prior=prior).fit(train.trajectories, intents(train.egos))
        zeros = np.zeros(codec.num_tokens, int)
        value = np.mean([ade(codec.decode(zeros, e), t)
                         for t, e in zip(held.trajectories, intents(held.egos), strict=True)])
        print(f"{name} {value:.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "validation")
