"""The validation results of finished stages side by side, with the blind reference rows and
the kinematic baselines."""

from __future__ import annotations

import json
from pathlib import Path

from vla.training.run import RESULT_FILE
from vla.training.validate import VALIDATION_COLUMNS as COLUMNS


def _row(name: str, metrics: dict) -> str:
    cells = ("–" if metrics.get(c) is None else f"{metrics[c]:.3f}" for c in COLUMNS)
    return f"| {name} | " + " | ".join(cells) + " |"


def markdown_table(run_dirs: list[str | Path]) -> str:
    lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    references, baselines, samples = None, None, set()
    for run in map(Path, run_dirs):
        result = json.loads((run / RESULT_FILE).read_text())
        val = result.get("validation")
        if val is None:
            raise ValueError(f"{run} ran without validation (eval_samples=0)")
        config = result["config"]
        name = f"{run.name} ({config['stage']}, {result['global_step']} steps"
        if config.get("trajectory_decoding", "greedy") != "greedy":
            name += f", {config['trajectory_decoding']}-entry trajectory"
        name += ", blank images)" if config["blank_images"] else ")"
        lines.append(_row(name, val["model"]))
        samples.add((val["split"], val["samples"]))
        references = references or val.get("references", {})
        baselines = baselines or val["baselines"]
    for name, metrics in {**(references or {}), **(baselines or {})}.items():
        lines.append(_row(name, metrics))
    if len(samples) > 1:
        raise ValueError(f"the runs were validated on different samples: {sorted(samples)}")
    split, n = samples.pop()
    return "\n".join(lines) + (f"\n\n{split} split, {n} samples, greedy constrained decoding "
                               "(of the trajectory tokens too unless the row says otherwise).")
