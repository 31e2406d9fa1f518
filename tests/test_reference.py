"""Reference policies: the blind rows decide from the prompt's numbers alone."""

import numpy as np

from vla.meta_action import LATERAL, LONGITUDINAL, derive_meta_action
from vla.reference import (
    BlindLearner,
    blind_constant,
    blind_prior,
    prior_trajectory,
    reference_policies,
    wrong_direction,
)


def test_blind_rows_ignore_the_scene(small_data_dir):
    from vla.data.build import load_dataset_dir

    dataset, _ = load_dataset_dir(small_data_dir)
    train, test = dataset["train"], dataset["test"]
    learner = BlindLearner(train, max_iter=20)
    assert set(reference_policies(train)) == {"blind-constant", "blind-prior", "blind-learned"}
    for sample in test:
        blank = {**sample, "images": [], "critical": "[]", "metric_cache": "{}",
                 "future": sample["future"], "reasoning": ""}
        for policy in (blind_constant, blind_prior, learner):
            a, b = policy(sample), policy(blank)  # the scene is not read
            assert a.meta_action == b.meta_action and np.allclose(a.trajectory, b.trajectory)
            assert a.trajectory.shape == (len(sample["future"]), 3)
            assert a.meta_action.longitudinal in LONGITUDINAL
            assert a.meta_action.lateral in LATERAL
        prior = prior_trajectory(sample)
        assert blind_prior(sample).meta_action == derive_meta_action(prior, sample["ego_speed"])
        wrong = wrong_direction(sample).trajectory
        assert np.linalg.norm(wrong[:, :2] - np.asarray(sample["future"])[:, :2], axis=1).max() \
            > 1.0  # mirrored or driven backwards: never the ground truth
