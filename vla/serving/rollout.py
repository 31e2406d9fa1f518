"""Batched rollouts over a data set through a policy (the vLLM endpoint), as trace records.

Up to ``concurrency`` samples are in flight at once (an endpoint's server batches them);
each sample's n outputs are appended to the JSONL file together when its request returns,
so a killed run leaves only whole samples (and at most a torn last line, cut on the next
run), and a re-run skips them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from vla.policy import map_over_samples
from vla.traces import read_jsonl, rollout_record


def done_sample_ids(path: Path, n: int) -> set[str]:
    """Samples with all n outputs already in the trace file; a torn last line is cut off
    (a whole last record that only lacks its newline gets it)."""
    if not path.exists():
        return set()
    lines = read_jsonl(path, warn_torn=False)
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        last_is_whole = bool(lines) and lines[-1].number == data.count(b"\n") + 1
        with path.open("r+b") as f:
            if last_is_whole:
                f.seek(0, 2)
                f.write(b"\n")
            else:
                f.truncate(data.rfind(b"\n") + 1)
    counts: dict[str, int] = {}
    for _, record in lines:
        counts[record["sample_id"]] = counts.get(record["sample_id"], 0) + 1
    return {sid for sid, c in counts.items() if c >= n}


def rollout_records(sample: dict, outputs: list, model: str) -> list[dict]:
    """The JSON of one sample's ``rollout`` records, one per output."""
    return [rollout_record(o, sample, model, k).to_json() for k, o in enumerate(outputs)]


def _run(policy, samples, n: int, out: Path, temperature: float, progress: bool,
         concurrency: int) -> dict:
    import httpx
    from tqdm import tqdm

    from vla.serving.urls import ServerUnreachable

    stats = {"samples": 0, "completions": 0, "parsed": 0, "errors": 0}
    lock = threading.Lock()
    bar = tqdm(total=len(samples), disable=not progress, desc="rollouts", unit="sample")

    def one(sample) -> None:
        try:
            outputs = policy.decide([sample], n, temperature)
        except (ServerUnreachable, httpx.HTTPError, ValueError) as exc:  # a bad sample too
            _failed(sample, exc)
            return
        records = rollout_records(sample, outputs, policy.name)
        with lock:
            with out.open("a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in records))
            stats["samples"] += 1
            stats["completions"] += len(records)
            stats["parsed"] += sum(r["parsed"] for r in records)
            bar.update()

    def _failed(sample, exc) -> None:
        with lock:
            stats["errors"] += 1
            bar.write(f"sample {sample['sample_id']}: {exc}")
            bar.update()

    for _ in map_over_samples(policy, one, samples, concurrency):
        pass
    bar.close()
    return stats


def run_rollouts(policy, dataset_split, n: int, out: str | Path,
                 temperature: float = 1.0, limit: int | None = None,
                 progress: bool = True, seed: int = 0, concurrency: int = 16) -> dict:
    """Roll out ``n`` outputs of ``policy`` (a :class:`vla.policy.Policy`) per sample; with
    ``limit``, of that many samples drawn at random, stratified by scenario (a larger limit
    with the same seed extends a smaller one's draw, so a re-run skips what is done); the
    trace records name each sample."""
    from vla.data.subsets import stratified_indices

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_sample_ids(out, n)
    indices = stratified_indices(list(dataset_split["scenario"]), limit, seed)
    ids = dataset_split["sample_id"]
    todo = [dataset_split[i] for i in indices if ids[i] not in done]
    stats = _run(policy, todo, n, out, temperature, progress, concurrency)
    stats["skipped"] = len(indices) - len(todo)
    return stats
