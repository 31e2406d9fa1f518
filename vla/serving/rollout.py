"""Batched rollouts over a data set through the vLLM endpoint, written as trace records.

All requests are in flight at once up to the client's concurrency limit (vLLM batches
them); each sample's n completions are appended to the JSONL file together when its
request returns, so a killed run leaves only whole samples, and a re-run skips them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from vla.serving.client import ClientResult, VLAClient
from vla.traces import decision_fields


def done_sample_ids(path: Path, n: int) -> set[str]:
    """Samples with all n completions already in the trace file (a torn last line is cut)."""
    if not path.exists():
        return set()
    counts: dict[str, int] = {}
    good_bytes = 0
    with path.open("rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
            counts[record["sample_id"]] = counts.get(record["sample_id"], 0) + 1
    if good_bytes < path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return {sid for sid, c in counts.items() if c >= n}


def rollout_records(sample: dict, result: ClientResult, model: str) -> list[dict]:
    records = []
    for k, c in enumerate(result.completions):
        records.append({
            "kind": "rollout", "sample_id": sample["sample_id"], "completion": k,
            "model": model, **decision_fields(c.text, c.decision, c.error, sample),
            "label": {"longitudinal": sample.get("decision_lon"),
                      "lateral": sample.get("decision_lat")},
            "tokens": {"prompt": result.prompt_tokens, "completion": c.completion_tokens},
            "seconds": round(result.seconds, 3),
        })
    return records


async def _run(client: VLAClient, samples, n: int, out: Path, temperature: float,
               progress: bool) -> dict:
    from tqdm import tqdm

    stats = {"samples": 0, "completions": 0, "parsed": 0, "errors": 0}
    bar = tqdm(total=len(samples), disable=not progress, desc="rollouts", unit="sample")
    async with httpx.AsyncClient() as http:
        async def one(sample):
            try:
                result = await client.decide(http, sample, n=n, temperature=temperature)
            except (httpx.HTTPError, ValueError) as exc:
                stats["errors"] += 1
                bar.write(f"sample {sample['sample_id']}: {exc}")
                bar.update()
                return
            records = rollout_records(sample, result, client.model)
            with out.open("a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in records))
            stats["samples"] += 1
            stats["completions"] += len(records)
            stats["parsed"] += sum(r["parsed"] for r in records)
            bar.update()

        await asyncio.gather(*(one(s) for s in samples))
    bar.close()
    return stats


def run_rollouts(client: VLAClient, dataset_split, n: int, out: str | Path,
                 temperature: float = 1.0, limit: int | None = None,
                 progress: bool = True, seed: int = 0) -> dict:
    """Roll out ``n`` completions per sample; with ``limit``, of that many samples drawn at
    random, stratified by scenario (a larger limit with the same seed extends a smaller one's
    draw, so a re-run skips what is done); the trace records name each sample."""
    from vla.data.subsets import stratified_indices

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_sample_ids(out, n)
    indices = stratified_indices(list(dataset_split["scenario"]), limit, seed)
    ids = dataset_split["sample_id"]
    todo = [dataset_split[i] for i in indices if ids[i] not in done]
    stats = asyncio.run(_run(client, todo, n, out, temperature, progress))
    stats["skipped"] = len(indices) - len(todo)
    return stats
