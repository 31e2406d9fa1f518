"""Greedy constrained validation of a model (optionally + a LoRA adapter) on a data split.

python eval/validate_adapter.py --model runs/tiny/stage1/model --adapter runs/tiny/grpo/adapter \\
    --data runs/tiny/data [--split test] [--samples 128] [--trajectory-decoding expected] [--json]
"""

import argparse
import json

from vla.data.build import load_dataset_dir
from vla.model.expected_entry import TRAJECTORY_DECODINGS
from vla.model.loading import load_model_dir
from vla.training.validate import results_table, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--trajectory-decoding", choices=TRAJECTORY_DECODINGS, default="greedy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset, _ = load_dataset_dir(args.data)
    split = dataset[args.split]
    samples = split.select(range(min(args.samples, len(split))))
    out = validate(load_model_dir(args.model, adapter=args.adapter), samples,
                   trajectory_decoding=args.trajectory_decoding)
    if args.json:
        print(json.dumps({"model": out["model"], "baselines": out["baselines"]}))
        return
    from rich.console import Console

    Console(width=140).print(results_table({args.adapter or args.model: out["model"],
                                            **out["baselines"]},
                                           f"{args.split}, {len(samples)} samples"))


if __name__ == "__main__":
    main()
