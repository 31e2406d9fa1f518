"""Open-loop evaluation: the model's trajectory and decision on logged scenes, with baselines.

For every sample: one greedy output under the output grammar and ``k`` sampled ones (for
minADE). Reported, over the samples and per scenario type:

- L2 at 1, 2 and 3 s in both conventions, labelled: ``l2_at_*`` is the error *at* that instant
  (UniAD's convention), ``l2_avg_*`` the mean error *up to* it (ST-P3's); ADE / FDE over the
  whole horizon; ``min_ade_k`` over the k samples;
- collision and off-road rates against the metric cache (:mod:`vla.scoring`);
- parse rate and the decision metrics of :mod:`vla.metrics` (accuracy, consistency,
  correct-and-consistent, grounding, the reasoning's coherence).

``model, mean of k``: the same k samples (drawn at ``temperature``) averaged point by point
into one trajectory. The mean is the L2-optimal point estimate under the model's own
distribution, where the greedy trajectory is its mode per token; a lower temperature
sharpens an undertrained model's distribution before averaging. Its text is not one of the
samples', so it has no decision metrics.

The model is any :class:`vla.policy.Policy` (transformers or an endpoint, built by
:func:`vla.policy_factory.make_policy`). Reference rows in the same table, through the same
protocol: the blind policies (:func:`vla.reference.blind_policies`: decisions with the same
metrics as the model's) and the trajectory baselines (:func:`vla.reference.trajectory_baselines`:
constant velocity, constant acceleration, the damped prior and the expert, i.e. the logged
future: the simulator's driver). The ego-shortcut diagnostic re-runs
the greedy output with the ego history removed (every row set to the current pose and speed),
perturbed (Gaussian noise, 1 m / 1 m/s) and with the navigation command swapped, and reports
the change.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from vla.metrics import decision_metrics, trajectory_metrics
from vla.policy import PolicyOutput, map_over_samples

COMMANDS = ("follow_road", "go_straight", "turn_left", "turn_right")


def _mean(rows: list[dict]) -> dict:
    keys = sorted({k for r in rows for k in r if isinstance(r[k], float)})
    return {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}


def without_history(sample: dict) -> dict:
    rows = np.asarray(sample["history"], float)
    flat = np.tile(rows[-1], (len(rows), 1))
    return {**sample, "history": flat.tolist()}


def perturbed_history(sample: dict, rng: np.random.Generator) -> dict:
    rows = np.asarray(sample["history"], float).copy()
    rows[:, :2] += rng.normal(0.0, 1.0, size=rows[:, :2].shape)
    rows[:, 3] = np.maximum(rows[:, 3] + rng.normal(0.0, 1.0, size=len(rows)), 0.0)
    return {**sample, "history": rows.tolist()}


def swapped_command(sample: dict) -> dict:
    others = [c for c in COMMANDS if c != sample["command"]]
    return {**sample, "command": others[zlib.crc32(sample["sample_id"].encode()) % len(others)]}


def decision_row(decision, sample: dict, hz: float) -> dict:
    """One sample's open-loop row of a decision (None: unparsable)."""
    row = {"parsed": float(decision is not None)}
    if decision is not None:
        row.update(trajectory_metrics(decision.trajectory, sample, hz))
        row.update(decision_metrics(decision, sample, hz))
    return row


def greedy_outputs(policy, samples: Sequence[dict], concurrency: int = 1, progress: bool = True,
                   desc: str = "open loop",
                   on_output: Callable[[int, dict, PolicyOutput], None] | None = None,
                   ) -> list[PolicyOutput]:
    """The policy's greedy output on each sample, in order; ``concurrency`` samples at once in
    threads (for an endpoint, whose server batches them; results do not depend on it).
    ``on_output(index, sample, output)`` is called as each one arrives (e.g. to append a
    trace record), from the calling thread."""
    from tqdm import tqdm

    samples = list(samples)
    out: list[PolicyOutput | None] = [None] * len(samples)
    answers = map_over_samples(policy, lambda s: policy.decide([s], 1, 0.0)[0], samples,
                               concurrency)
    for i, output in enumerate(tqdm(answers, total=len(samples), desc=desc,
                                    disable=not progress, leave=False)):
        out[i] = output
        if on_output is not None:
            on_output(i, samples[i], output)
    return out


def _sample_rows(policy, sample, hz: float, k: int, shortcut: bool, rng: np.random.Generator,
                 temperature: float, baselines: dict) -> tuple[dict, dict, dict, dict | None]:
    """The model's row, the baselines' rows, the shortcut rows and the mean-of-k row of one
    sample."""
    row = decision_row(policy.decide([sample], 1, 0.0)[0].decision, sample, hz)
    mean_row = None
    if k > 0:
        samples_k = [o.decision for o in policy.decide([sample], k, temperature)
                     if o.decision is not None]
        if samples_k:
            gt = np.asarray(sample["future"], float)
            row[f"min_ade_{k}"] = float(min(
                np.linalg.norm(d.trajectory[:, :2] - gt[:, :2], axis=1).mean()
                for d in samples_k))
            mean = np.mean([d.trajectory for d in samples_k], axis=0)
            mean_row = {"parsed": len(samples_k) / k, **trajectory_metrics(mean, sample, hz)}
    base = {name: trajectory_metrics(baseline.decide([sample])[0].trajectory, sample, hz)
            for name, baseline in baselines.items()}
    short = {}
    if shortcut:
        for name, variant in (("history_removed", without_history(sample)),
                              ("history_perturbed", perturbed_history(sample, rng)),
                              ("command_swapped", swapped_command(sample))):
            short[name] = decision_row(policy.decide([variant], 1, 0.0)[0].decision, sample, hz)
    return row, base, short, mean_row


def evaluate_open_loop(policy, samples, hz: float, k: int = 6,
                       shortcut: bool = True, seed: int = 0, progress: bool = True,
                       concurrency: int = 1, temperature: float = 1.0,
                       references: dict | None = None) -> dict:
    """Open-loop evaluation of ``policy`` (a :class:`vla.policy.Policy`) on ``samples``.

    ``references`` (name → Policy; default :func:`vla.reference.blind_policies` without the
    learned one) are scored with the same metrics on the same samples
    (``out["references"]``); the trajectory baselines (``out["baselines"]``) are
    :func:`vla.reference.trajectory_baselines`.

    With ``concurrency`` > 1, that many samples are evaluated at once in threads (for an
    endpoint, whose server batches the requests); results do not depend on it.
    """
    from tqdm import tqdm

    from vla.reference import blind_policies, trajectory_baselines

    samples = list(samples)
    baselines = trajectory_baselines()
    rngs = [np.random.default_rng([seed, i]) for i in range(len(samples))]
    rows_of = map_over_samples(policy, lambda i: _sample_rows(
        policy, samples[i], hz, k, shortcut, rngs[i], temperature, baselines),
        range(len(samples)), concurrency)
    results = list(tqdm(rows_of, total=len(samples), desc="open loop", disable=not progress,
                        leave=False))
    rows, mean_rows, per_scenario = [], [], {}
    base_rows = {name: [] for name in baselines}
    shortcut_rows = {"history_removed": [], "history_perturbed": [], "command_swapped": []}
    for sample, (row, base, short, mean_row) in zip(samples, results, strict=True):
        rows.append(row)
        if mean_row is not None:
            mean_rows.append(mean_row)
        per_scenario.setdefault(sample["scenario"], []).append(row)
        for name, metrics in base.items():
            base_rows[name].append(metrics)
        for name, metrics in short.items():
            shortcut_rows[name].append(metrics)
    policies = blind_policies() if references is None else references
    model = _mean(rows)
    out = {"samples": len(rows), "model": model, "k": k, "temperature": temperature,
           "references": {name: _mean([decision_row(o.decision, s, hz) for s, o in
                                       zip(samples, ref.decide(samples), strict=True)])
                          for name, ref in policies.items()},
           "baselines": {name: _mean(r) for name, r in base_rows.items()},
           "per_scenario": {s: {"samples": len(r), **_mean(r)}
                            for s, r in sorted(per_scenario.items())}}
    if mean_rows:
        out["model_mean_k"] = _mean(mean_rows)
    if shortcut:
        out["shortcut"] = {}
        for name, r in shortcut_rows.items():
            m = _mean(r)
            out["shortcut"][name] = {**m, "delta_ade": round(m.get("ade", np.nan)
                                                             - model.get("ade", np.nan), 4)}
    return out
