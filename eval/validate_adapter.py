"""Greedy constrained validation of a model (optionally + a LoRA adapter) on a data split.

python eval/validate_adapter.py --model runs/tiny/stage1/model --adapter runs/tiny/grpo/adapter \\
    --data runs/tiny/data [--split test] [--samples 128] [--seed 0] \\
    [--trajectory-decoding expected] [--json]

The samples are drawn at random from the split, stratified by scenario (the same seed, the
same samples).
"""

import argparse
import json

from vla.data.build import load_dataset_dir
from vla.data.subsets import stratified_subset, subset_record
from vla.model.expected_entry import TRAJECTORY_DECODINGS
from vla.policy_factory import make_policy
from vla.reference import blind_policies
from vla.training.validate import results_table, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--adapter")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--samples", type=int, default=128,
                        help="drawn at random, stratified by scenario")
    parser.add_argument("--seed", type=int, default=0, help="of the --samples draw")
    parser.add_argument("--trajectory-decoding", choices=TRAJECTORY_DECODINGS, default="greedy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset, _ = load_dataset_dir(args.data)
    split = dataset[args.split]
    samples, indices = stratified_subset(split, args.samples, args.seed, return_indices=True)
    policy = make_policy(model_dir=args.model, adapter=args.adapter,
                         trajectory_decoding=args.trajectory_decoding)
    out = validate(policy, samples, references=blind_policies(dataset.get("train")))
    if args.json:
        print(json.dumps({"model": out["model"], "references": out["references"],
                          "baselines": out["baselines"],
                          "subset": {"split": args.split,
                                     **subset_record(indices, args.seed, len(split))}}))
        return
    from rich.console import Console

    Console(width=160).print(results_table({args.adapter or args.model: out["model"],
                                            **out["references"], **out["baselines"]},
                                           f"{args.split}, {len(samples)} samples "
                                           f"(stratified by scenario, seed {args.seed})"))


if __name__ == "__main__":
    main()
