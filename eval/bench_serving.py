"""Benchmark: vLLM batched rollouts vs transformers generate, and a 1,000-request load run.

    python eval/bench_serving.py --model runs/bench/model --data runs/data300 \\
        [--prompts 16] [--n 8] [--concurrency 16] [--load-requests 1000] [--json OUT]

Starts a vLLM server of the model on 127.0.0.1 (as `vla serve` does), prints a table of what it
measured.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hf-prompts-per-call", default="1,4")
    parser.add_argument("--load-requests", type=int, default=1000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from vla.data.build import load_dataset_dir, served_rig
    from vla.model.loading import load_model_dir
    from vla.serving.bench import bench_transformers, bench_vllm, load_run
    from vla.serving.client import VLAClient
    from vla.serving.vllm_server import ServerConfig, VLLMServer

    dataset, meta = load_dataset_dir(args.data)
    split = dataset[args.split]
    samples = [split[i] for i in range(min(args.prompts, len(split)))]
    rig_served = served_rig(meta)
    rows = []
    loaded = load_model_dir(args.model)
    for k in [int(x) for x in args.hf_prompts_per_call.split(",")]:
        rows.append(bench_transformers(loaded, samples, args.n, k))
    del loaded
    server = VLLMServer(ServerConfig(model=args.model, served_model_name="bench",
                                     max_model_len=4096, **rig_served),
                        log_path="runs/bench/vllm_server.log")
    with server:
        client = VLAClient.for_model_dir(server.url, "bench", args.model, **rig_served)
        bench_vllm(client, samples[:2], args.n, args.concurrency)  # warm-up
        rows.append(bench_vllm(client, samples, args.n, args.concurrency))
        load = load_run(client, samples, args.load_requests, args.concurrency, server)
    best_hf = max((r for r in rows if r.engine == "transformers"), key=lambda r: r.samples_per_s)
    vllm = rows[-1]
    table = Table(title=f"{len(samples)} prompts x n={args.n}, same grammar, this machine")
    for col in ("engine", "setting", "samples", "samples/s", "tokens/s", "parsed"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.engine, r.setting, str(r.samples), f"{r.samples_per_s:.2f}",
                      f"{r.tokens_per_s:.0f}", f"{r.parsed}/{r.samples}")
    console = Console()
    console.print(table)
    ratio = vllm.samples_per_s / best_hf.samples_per_s
    console.print(f"vLLM / best transformers sample throughput: {ratio:.1f}x")
    console.print(f"load run: {load}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [r.__dict__ | {"samples_per_s": r.samples_per_s,
                                              "tokens_per_s": r.tokens_per_s} for r in rows],
                       "ratio": ratio, "load": load}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
