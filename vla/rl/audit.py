"""``vla rewards audit``: score reference completions on every sample with every reward.

A reward that a blind or scene-independent policy can max is a bug; this audit makes that
measurable. The policies are those of :data:`vla.reference.AUDIT_POLICIES` (the label, two
blind rows, a fixed sentence, the label over a wrong-direction trajectory). Per policy it
reports the mean of each reward component, the mean total, and ``win_rate_vs_label``: the
share of samples on which it totals more than the label.

The trajectories are scored as given, in metres (no codec round trip): the audit judges the
rewards, not a model's vocabulary.
"""

from __future__ import annotations

import numpy as np

from vla.reference import AUDIT_POLICIES
from vla.rl.rewards import DEFAULT_WEIGHTS, RewardWeights, score_decision


def audit_rewards(samples, weights: RewardWeights = DEFAULT_WEIGHTS,
                  policies: dict | None = None) -> dict:
    """``{"samples": n, "policies": {name: {"total", "win_rate_vs_label", "components"}},
    "label_total_range": max - min of the label's totals}``."""
    policies = policies or AUDIT_POLICIES
    if "label" not in policies:
        raise ValueError("the audit needs the 'label' policy to compare against")
    totals: dict[str, list[float]] = {name: [] for name in policies}
    components: dict[str, dict[str, list[float]]] = {name: {} for name in policies}
    samples = list(samples)
    if not samples:
        raise ValueError("no samples to audit")
    for sample in samples:
        for name, policy in policies.items():
            result = score_decision(policy(sample), sample, weights)
            totals[name].append(result.total)
            for reward, r in result.rewards.items():
                components[name].setdefault(reward, []).append(r.value)
    label = np.asarray(totals["label"])
    out = {}
    for name in policies:
        mine = np.asarray(totals[name])
        out[name] = {"total": round(float(mine.mean()), 4),
                     "win_rate_vs_label": round(float(np.mean(mine > label + 1e-9)), 4),
                     "components": {k: round(float(np.mean(v)), 4)
                                    for k, v in components[name].items()}}
    return {"samples": len(samples), "policies": out,
            "label_total_range": round(float(label.max() - label.min()), 4)}


def audit_table(result: dict, title: str):
    from rich.table import Table

    names = list(next(iter(result["policies"].values()))["components"])
    table = Table(title=title)
    for col in ("policy", "total", "wins vs label", *names):
        table.add_column(col, justify="right")
    for name, row in result["policies"].items():
        table.add_row(name, f"{row['total']:.3f}", f"{row['win_rate_vs_label']:.3f}",
                      *(f"{row['components'][c]:.3f}" for c in names))
    return table


def _cmd_audit(args) -> int:
    import json

    from vla.data.build import load_dataset_dir
    from vla.data.subsets import stratified_subset

    dataset, _meta = load_dataset_dir(args.data)
    if args.split not in dataset:
        raise SystemExit(f"{args.data} has no {args.split!r} split (it has {list(dataset)})")
    samples = stratified_subset(dataset[args.split], args.limit, args.seed)
    result = audit_rewards(samples)
    result.update(data=str(args.data), split=args.split)
    if args.json:
        print(json.dumps(result))
    else:
        from rich.console import Console

        Console().print(audit_table(result, f"reward audit: {args.data} {args.split}, "
                                            f"{result['samples']} samples (means)"))
        print(f"label total range over samples: {result['label_total_range']:.3f}")
    return 0


def add_rewards_parser(sub) -> None:
    rewards = sub.add_parser("rewards", help="inspect the GRPO rewards")
    rewards_sub = rewards.add_subparsers(dest="rewards_command", required=True)
    p = rewards_sub.add_parser("audit", help="score the label, blind and adversarial "
                                             "completions with every reward")
    p.add_argument("--data", required=True, help="a built data set")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None,
                   help="only K samples, drawn at random, stratified by scenario")
    p.add_argument("--seed", type=int, default=0, help="of the --limit draw")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_audit)
