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

The image diagnostic asks whether the model looks at its cameras: the greedy output re-run with
every camera image black (``images_blanked``) and with the images of another evaluated sample
(``images_shuffled``: :func:`shuffle_partners`), each still scored against the sample's own
labels, with the change against the unaltered greedy output (``meta_action_changed``: the share
of samples whose written meta-action differs; ``trajectory_shift``: the mean distance between
the two plans, m). A model whose decisions do not move when its images do reads the prompt's
numbers alone, like the blind rows.

``subsets`` splits the samples into those with a scripted event to react to
(:data:`vla.sim.recipes.EVENT_SCENARIOS`) and free driving (:func:`subset_of`), with the
model's, the references' and the image diagnostic rows on each: free driving is mostly decided
by the ego's own speed, which the prompt states, so the event samples are where images must
help. Samples of converted driving logs (:mod:`vla.convert`) form the subset ``logs``, and
``per_source`` reports the simulator's and each log source's samples apart. On logs the
metrics follow the log: errors over its real future only, off-road and grounding not
available (no lane map, no ground truth of the critical facts).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image

from vla.data.subsets import subset_name
from vla.metrics import decision_metrics, real_steps, trajectory_metrics
from vla.policy import PolicyOutput, map_over_samples
from vla.sim.recipes import SUBSETS

COMMANDS = ("follow_road", "go_straight", "turn_left", "turn_right")
IMAGE_DIAGNOSTICS = ("images_blanked", "images_shuffled")
# the metrics whose change against the model an image diagnostic row reports (delta_<name>)
IMAGE_DIAGNOSTIC_DELTAS = ("accuracy_lon", "accuracy_lat", "consistency", "ade")


def _mean(rows: list[dict]) -> dict:
    """Mean of every float metric over the rows that have it (None: not available there)."""
    keys = sorted({k for r in rows for k in r if isinstance(r[k], float)})
    return {k: round(float(np.mean([r[k] for r in rows if isinstance(r.get(k), float)])), 4)
            for k in keys}


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


@lru_cache(maxsize=16)
def _black_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return buffer.getvalue()


def blanked_images(images: Sequence, where: str = "images") -> list:
    """Black RGB images of the same sizes, in the form the images came in: a PIL image for a
    PIL image (as a data set row holds them), a PNG part ``{"bytes", "path"}`` for a PNG part
    (as an observation of :mod:`vla.sim` holds them)."""
    out = []
    for j, image in enumerate(images):
        if isinstance(image, Image.Image):
            out.append(Image.new("RGB", image.size))
        elif isinstance(image, dict) and isinstance(image.get("bytes"), bytes | bytearray):
            try:
                with Image.open(io.BytesIO(image["bytes"])) as decoded:  # the header only
                    size = decoded.size
            except OSError as exc:
                raise ValueError(f"{where}[{j}]: bytes are not a readable image ({exc})"
                                 ) from None
            out.append({"bytes": _black_png(size), "path": None})
        else:
            raise TypeError(f"{where}[{j}]: expected a PIL image or a PNG part "
                            f"{{'bytes', 'path'}}, got {type(image).__name__}")
    return out


def without_images(sample: dict) -> dict:
    """``sample`` with every camera image black (:func:`blanked_images`)."""
    return {**sample, "images": blanked_images(sample["images"],
                                               f"sample {sample.get('sample_id')!r}: images")}


def with_images_of(sample: dict, other: dict) -> dict:
    """``sample`` (its prompt numbers, command and labels) with the camera images of
    ``other``."""
    return {**sample, "images": other["images"]}


def shuffle_partners(image_counts: Sequence[int]) -> list[int | None]:
    """For each sample (given its number of images), the sample whose images it is shown in
    the ``images_shuffled`` diagnostic: among the m samples with the same number of images, in
    their order, the j-th gets the images of the ((j + m // 2) % m)-th. Deterministic, a
    permutation of each group with no sample its own partner, and half the group away, so
    mostly another episode. None for a sample alone with its number of images."""
    groups: dict[int, list[int]] = {}
    for i, count in enumerate(image_counts):
        groups.setdefault(int(count), []).append(i)
    partners: list[int | None] = [None] * len(image_counts)
    for members in groups.values():
        m = len(members)
        if m < 2:
            continue
        for j, i in enumerate(members):
            partners[i] = members[(j + m // 2) % m]
    return partners


def split_by_subset(samples: Sequence[dict]) -> dict[str, list[int]]:
    """The indices of the event samples and of the free-driving samples (:func:`subset_name`),
    in order: ``{"events": [...], "free": [...]}``, plus ``"logs"`` for the samples of
    converted driving logs where there are any. A sample needs ``scenario`` (and
    ``source``, for logs)."""
    out: dict[str, list[int]] = {name: [] for name in SUBSETS}
    for i, sample in enumerate(samples):
        out.setdefault(subset_name(sample), []).append(i)
    return out


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


@dataclass
class _SampleRows:
    """One sample's rows: the model's greedy output, the trajectory baselines, the shortcut
    and image diagnostic variants (name → row; absent: not run) and the mean of k (None: no
    sampled output parsed, or k = 0)."""

    model: dict
    baselines: dict
    shortcut: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    mean_k: dict | None = None


def decision_change(decision, variant) -> dict:
    """How a variant's greedy decision differs from the unaltered one: whether the written
    meta-action changed, and the mean distance between the two plans in metres (empty when
    either did not parse)."""
    if decision is None or variant is None:
        return {}
    out = {"meta_action_changed": float(decision.meta_action != variant.meta_action)}
    if decision.trajectory is not None and variant.trajectory is not None:
        shift = np.asarray(decision.trajectory)[:, :2] - np.asarray(variant.trajectory)[:, :2]
        out["trajectory_shift"] = float(np.linalg.norm(shift, axis=1).mean())
    return out


def _sample_rows(policy, sample, hz: float, k: int, shortcut: bool, rng: np.random.Generator,
                 temperature: float, baselines: dict, image_diagnostics: bool,
                 partner: dict | None) -> _SampleRows:
    """Every row of one sample; ``partner`` is the sample whose images the
    ``images_shuffled`` variant shows (None: that variant is not run)."""
    greedy = policy.decide([sample], 1, 0.0)[0].decision
    rows = _SampleRows(model=decision_row(greedy, sample, hz), baselines={})
    if k > 0:
        samples_k = [o.decision for o in policy.decide([sample], k, temperature)
                     if o.decision is not None]
        if samples_k:
            n = real_steps(sample)
            gt = np.asarray(sample["future"], float)[:n]
            rows.model[f"min_ade_{k}"] = float(min(
                np.linalg.norm(d.trajectory[:n, :2] - gt[:, :2], axis=1).mean()
                for d in samples_k))
            mean = np.mean([d.trajectory for d in samples_k], axis=0)
            rows.mean_k = {"parsed": len(samples_k) / k, **trajectory_metrics(mean, sample, hz)}
    rows.baselines = {name: trajectory_metrics(baseline.decide([sample])[0].trajectory, sample,
                                               hz)
                      for name, baseline in baselines.items()}
    if shortcut:
        for name, variant in (("history_removed", without_history(sample)),
                              ("history_perturbed", perturbed_history(sample, rng)),
                              ("command_swapped", swapped_command(sample))):
            rows.shortcut[name] = decision_row(policy.decide([variant], 1, 0.0)[0].decision,
                                               sample, hz)
    if image_diagnostics:
        variants = {"images_blanked": without_images(sample)}
        if partner is not None:
            variants["images_shuffled"] = with_images_of(sample, partner)
        for name, variant in variants.items():
            decision = policy.decide([variant], 1, 0.0)[0].decision
            rows.images[name] = {**decision_row(decision, sample, hz),  # the sample's labels
                                 **decision_change(greedy, decision)}
    return rows


def _with_deltas(row: dict, model: dict, names: Sequence[str]) -> dict:
    """``row`` with ``delta_<name>``: its value minus the model's, for each of ``names`` both
    rows have."""
    return {**row, **{f"delta_{n}": round(row[n] - model[n], 4) for n in names
                      if n in row and n in model}}


def _decision_table(results: Sequence[_SampleRows], reference_rows: dict[str, list[dict]],
                    indices: Sequence[int], image_diagnostics: bool) -> dict:
    """The model's, the references' and the image diagnostic rows on the samples at
    ``indices``."""
    model = _mean([results[i].model for i in indices])
    out = {"samples": len(indices), "model": model,
           "references": {name: _mean([rows[i] for i in indices])
                          for name, rows in reference_rows.items()}}
    if image_diagnostics:
        out["image_diagnostics"] = {}
        for name in IMAGE_DIAGNOSTICS:
            rows = [results[i].images[name] for i in indices if name in results[i].images]
            out["image_diagnostics"][name] = {
                "samples": len(rows), **_with_deltas(_mean(rows), model, IMAGE_DIAGNOSTIC_DELTAS)}
    return out


def evaluate_open_loop(policy, samples, hz: float, k: int = 6,
                       shortcut: bool = True, seed: int = 0, progress: bool = True,
                       concurrency: int = 1, temperature: float = 1.0,
                       references: dict | None = None, image_diagnostics: bool = True) -> dict:
    """Open-loop evaluation of ``policy`` (a :class:`vla.policy.Policy`) on ``samples``.

    ``references`` (name → Policy; default :func:`vla.reference.blind_policies` without the
    learned one) are scored with the same metrics on the same samples
    (``out["references"]``); the trajectory baselines (``out["baselines"]``) are
    :func:`vla.reference.trajectory_baselines`. ``shortcut`` adds the ego-shortcut rows
    (``out["shortcut"]``), ``image_diagnostics`` the images blanked and images shuffled rows
    (``out["image_diagnostics"]``; each with ``samples``: a sample alone with its number of
    images has no shuffled row). ``out["subsets"]`` holds the model's, the references' and the
    image diagnostic rows on the event samples and on free driving (:func:`split_by_subset`).

    With ``concurrency`` > 1, that many samples are evaluated at once in threads (for an
    endpoint, whose server batches the requests); results do not depend on it.
    """
    from tqdm import tqdm

    from vla.reference import blind_policies, trajectory_baselines

    samples = list(samples)
    sources = [s.get("source", "sim") for s in samples]
    subsets = split_by_subset(samples)  # unknown scenario names fail here
    partners = (shuffle_partners([len(s["images"]) for s in samples]) if image_diagnostics
                else [None] * len(samples))
    baselines = trajectory_baselines()
    rngs = [np.random.default_rng([seed, i]) for i in range(len(samples))]
    rows_of = map_over_samples(policy, lambda i: _sample_rows(
        policy, samples[i], hz, k, shortcut, rngs[i], temperature, baselines,
        image_diagnostics, None if partners[i] is None else samples[partners[i]]),
        range(len(samples)), concurrency)
    results = list(tqdm(rows_of, total=len(samples), desc="open loop", disable=not progress,
                        leave=False))
    rows = [r.model for r in results]
    mean_rows = [r.mean_k for r in results if r.mean_k is not None]
    per_scenario: dict[str, list[dict]] = {}
    per_source: dict[str, list[dict]] = {}
    for sample, row, source in zip(samples, rows, sources, strict=True):
        per_scenario.setdefault(sample["scenario"], []).append(row)
        per_source.setdefault(source, []).append(row)
    policies = blind_policies() if references is None else references
    reference_rows = {name: [decision_row(o.decision, s, hz) for s, o in
                             zip(samples, ref.decide(samples), strict=True)]
                      for name, ref in policies.items()}
    everything = _decision_table(results, reference_rows, range(len(samples)),
                                 image_diagnostics)
    model = everything["model"]
    out = {"samples": len(rows), "model": model, "k": k, "temperature": temperature,
           "references": everything["references"],
           "baselines": {name: _mean([r.baselines[name] for r in results])
                         for name in baselines},
           "per_scenario": {s: {"samples": len(r), **_mean(r)}
                            for s, r in sorted(per_scenario.items())},
           "per_source": {s: {"samples": len(r), **_mean(r)}
                          for s, r in sorted(per_source.items())}}
    if mean_rows:
        out["model_mean_k"] = _mean(mean_rows)
    if shortcut:
        out["shortcut"] = {}
        for name in ("history_removed", "history_perturbed", "command_swapped"):
            m = _mean([r.shortcut[name] for r in results])
            out["shortcut"][name] = {**m, "delta_ade": round(m.get("ade", np.nan)
                                                             - model.get("ade", np.nan), 4)}
    if image_diagnostics:
        out["image_diagnostics"] = everything["image_diagnostics"]
    out["subsets"] = {name: _decision_table(results, reference_rows, indices,
                                            image_diagnostics)
                      for name, indices in subsets.items()}
    return out
