"""The ``vla`` console script: one subcommand per non-distributed job."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path


def _cmd_env(args: argparse.Namespace) -> int:
    from vla.installed import profile, versions

    print(f"profile: {profile()}")
    for name, version in versions().items():
        print(f"{name:<14} {version or 'not installed'}")
    return 0


def _cmd_model_init(args: argparse.Namespace) -> int:
    import dataclasses

    from vla.model.build import init_model
    from vla.model.presets import get_preset

    if args.shape is not None:
        if args.arch is not None:
            raise SystemExit("vla model init: --arch does not go with --shape (the shape "
                             "fixes its architecture)")
        return _cmd_model_init_shape(args)
    for flag, value in (("--layers", args.layers), ("--dtype", args.dtype)):
        if value is not None:
            raise SystemExit(f"vla model init: {flag} goes with --shape")
    args.preset = args.preset or "tiny"
    args.arch = args.arch or "qwen2_5_vl"
    preset = get_preset(args.preset, args.arch)
    if args.codebook_size is not None:
        try:
            preset = dataclasses.replace(preset, codebook_size=args.codebook_size)
        except ValueError as err:
            raise SystemExit(f"--codebook-size: {err}") from None
    out = init_model(preset, args.out, seed=args.seed, data_dir=args.data)
    print(f"saved the {args.preset} {args.arch} model ({preset.codebook_size} trajectory "
          f"tokens) to {out}")
    return 0


def _cmd_model_init_shape(args: argparse.Namespace) -> int:
    """``vla model init --shape NAME [--layers N]``: an exact-shape model (its architecture
    is the shape's; ``--arch`` does not apply)."""
    from vla.model.shape_init import init_shape

    try:
        out = init_shape(args.shape, args.out, layers=args.layers, seed=args.seed,
                         data_dir=args.data, dtype=args.dtype or "bfloat16",
                         codebook_size=args.codebook_size)
    except ValueError as exc:
        raise SystemExit(f"vla model init: {exc}") from None
    print(f"saved the {args.shape} shape ({args.layers or 'all'} language layers, "
          f"{args.dtype or 'bfloat16'}) to {out}")
    return 0


def _cmd_model_inject(args: argparse.Namespace) -> int:
    from vla.model.inject import inject

    try:
        meta = inject(args.base, args.out, data_dir=args.data, seed=args.seed, arch=args.arch)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"vla model inject: {exc}") from None
    print(f"added {meta['added_tokens']} tokens ({meta['vocab_before']} -> "
          f"{meta['vocab_after']}); saved to {args.out}")
    return 0


def _cmd_model_merge(args: argparse.Namespace) -> int:
    from vla.model.merge import merge_adapter

    out = merge_adapter(args.base, args.adapter, args.out)
    print(f"merged {args.adapter} into {args.base}; saved to {out}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from vla.serving.vllm_server import (
        VLLMServer,
        default_serve_config,
        lora_rank_of,
        server_config,
    )

    adapters = []
    for spec in args.adapter:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--adapter expects NAME=DIR, got {spec!r}")
        adapters.append((name, path))
    try:  # the serving config's settings, the flags given on top
        config = server_config(args.model, args.config or default_serve_config(),
                               host=args.host, port=args.port, served_model_name=args.name,
                               api_key=args.api_key, images_per_prompt=args.images_per_prompt,
                               max_model_len=args.max_model_len, adapters=tuple(adapters))
        rank = max((lora_rank_of(path) for _, path in adapters), default=0)
        if rank > config.max_lora_rank:
            config = dataclasses.replace(config, max_lora_rank=rank)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"vla serve: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = VLLMServer(config, log_path=args.log)
    print(f"starting vLLM for {config.model} (log: {args.log}) ...", flush=True)
    with server:
        print(f"serving {config.model_name} at {server.url}/v1 (Ctrl-C to stop)", flush=True)
        while not stop.wait(1.0):
            if server.process.poll() is not None:
                print(f"vLLM exited with code {server.process.returncode}", file=sys.stderr)
                return 1
    print("stopped", flush=True)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import json

    from vla.predict import predict_from_dirs

    record = predict_from_dirs(args.model, args.data, args.index, split=args.split,
                               constrained=not args.unconstrained, trace_path=args.trace,
                               adapter=args.adapter)
    if args.json:
        print(json.dumps(record))
        return 0 if record["parsed"] else 1
    if record["parsed"]:
        d = record["decision"]
        print(f"reasoning:   {d['reasoning']}")
        print(f"meta-action: {d['meta_action']['longitudinal']}, {d['meta_action']['lateral']}"
              f"   (derived from the trajectory: {record['derived_meta_action']})")
        traj = d["trajectory"]
        print("trajectory:  " + ", ".join(f"({x:.1f}, {y:.1f})" for x, y, _ in traj[9::10])
              + "  (every 1 s, metres, ego frame)")
    else:
        print(f"unparsable output ({record['error']['kind']}): {record['error']['message']}")
    print(f"label:       {record['label']['longitudinal']}, {record['label']['lateral']}")
    print(f"trace appended to {args.trace}")
    return 0 if record["parsed"] else 1


def _cmd_rollout(args: argparse.Namespace) -> int:
    from vla.data.build import load_dataset_dir, served_rig
    from vla.policy import check_request
    from vla.policy_factory import make_policy
    from vla.serving.rollout import run_rollouts
    from vla.serving.urls import ServerUnreachable

    dataset, meta = load_dataset_dir(args.data)
    try:
        check_request([], args.n, args.temperature)
        policy = make_policy(model_dir=args.model_dir, endpoint=args.endpoint,
                             served_model=args.served_name, api_key=args.api_key,
                             concurrency=args.concurrency, **served_rig(meta))
    except (ServerUnreachable, ValueError) as exc:
        raise SystemExit(f"vla rollout: {exc}") from None
    stats = run_rollouts(policy, dataset[args.split], args.n, args.out,
                         temperature=args.temperature, limit=args.limit, seed=args.seed,
                         concurrency=args.concurrency)
    print(f"{stats['samples']} samples, {stats['completions']} completions "
          f"({stats['parsed']} parsed), {stats['skipped']} skipped as already done, "
          f"{stats['errors']} errors -> {args.out}")
    return 0 if stats["errors"] == 0 else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from vla.demo import DemoConfig, run_demo

    # the sizes not given keep DemoConfig's defaults
    sizes = {name: getattr(args, name) for name in (
        "workers", "eval_samples", "open_loop_samples", "open_loop_k", "closed_loop_episodes")}
    run_demo(DemoConfig(out=Path(args.out), scale=args.scale, episodes=args.episodes,
                        grpo_steps=args.grpo_steps, stage1_steps=args.stage1_steps,
                        stage2_steps=args.stage2_steps, train_threads=args.train_threads,
                        **{k: v for k, v in sizes.items() if v is not None}))
    return 0


def _add_env_parser(sub) -> None:
    """``vla env``: the installed stack."""
    p = sub.add_parser("env", help="show the installed stack (profile and versions)")
    p.set_defaults(func=_cmd_env)


def _add_model_parser(sub) -> None:
    """``vla model init|inject|merge``: build and manage model checkpoints."""
    model = sub.add_parser("model", help="build and manage model checkpoints")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    p = model_sub.add_parser("init", help="build a preset model with random weights")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--preset", default=None, choices=["tiny", "small"],
                       help="default: tiny")
    which.add_argument("--shape", default=None,
                       choices=["cosmos-reason1-7b", "cosmos-reason2-2b", "cosmos-reason2-8b"],
                       help="a real checkpoint's exact shape (vla/model/shapes.py) with random "
                            "weights, instead of a preset")
    p.add_argument("--layers", type=int, default=None, metavar="N",
                   help="with --shape: language layers to keep (the vision tower cut in "
                        "proportion; default: all)")
    p.add_argument("--dtype", default=None, choices=["bfloat16", "float32"],
                   help="with --shape: the saved weights' dtype (default: bfloat16)")
    p.add_argument("--arch", default=None, choices=["qwen2_5_vl", "qwen3_vl"],
                   help="with --preset: the architecture, Qwen2.5-VL or Qwen3-VL (default: "
                        "qwen2_5_vl); a --shape fixes its own")
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None,
                   help="a built data set: fit the trajectory codec and tokenizer on its train "
                        "split (default: synthetic trajectories)")
    p.add_argument("--codebook-size", type=int, default=None, metavar="K",
                   help="trajectory codebook entries (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_model_init)

    p = model_sub.add_parser("inject", help="add the delimiters and trajectory tokens to a "
                                           "local Qwen2.5-VL or Qwen3-VL checkpoint")
    p.add_argument("--base", required=True, help="local checkpoint folder")
    p.add_argument("--arch", default=None, choices=["qwen2_5_vl", "qwen3_vl"],
                   help="refuse a checkpoint of another architecture (default: either)")
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="a built data set to fit the codec on")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_model_inject)

    p = model_sub.add_parser("merge", help="merge a LoRA adapter into its base (own process)")
    p.add_argument("--base", required=True, help="the model the adapter was trained on")
    p.add_argument("--adapter", required=True, help="the adapter folder (stage 2 output)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_model_merge)


def _add_predict_parser(sub) -> None:
    """``vla predict``: one sample's decision through transformers."""
    p = sub.add_parser("predict", help="generate a decision for one sample (transformers)")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", default=None, help="a LoRA adapter to merge into the model")
    p.add_argument("--data", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--json", action="store_true")
    p.add_argument("--unconstrained", action="store_true",
                   help="no grammar constraint (for debugging)")
    p.add_argument("--trace", default="runs/traces/predict.jsonl")
    p.set_defaults(func=_cmd_predict)


def _add_serve_parser(sub) -> None:
    """``vla serve``: a model behind vLLM's OpenAI-compatible server."""
    p = sub.add_parser("serve", help="serve a model with vLLM's OpenAI-compatible server")
    p.add_argument("--model", required=True, help="a saved model directory")
    p.add_argument("--config", default=None, metavar="NAME|FILE",
                   help="a serving config: cpu, gpu (one GPU), tp2 (tensor-parallel over two "
                        "GPUs) from serve/*.yaml, or a YAML file (default: gpu where torch sees "
                        "a GPU, else cpu); the flags below override its settings")
    p.add_argument("--host", default=None, help="default: the config's (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: the config's (8000)")
    p.add_argument("--name", default=None, help="served model name (default: directory name)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--images-per-prompt", type=int, default=None,
                   help="cameras x frames (default: the config's, 8)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="default: the config's (4096)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                   help="a LoRA adapter to serve under NAME (repeatable); runtime loading "
                        "through /v1/load_lora_adapter is enabled")
    p.add_argument("--log", default="runs/vllm_server.log")
    p.set_defaults(func=_cmd_serve)


def _add_rollout_parser(sub) -> None:
    """``vla rollout``: batched rollouts over a data set through a vLLM server."""
    p = sub.add_parser("rollout", help="batched rollouts over a data set through vLLM")
    p.add_argument("--endpoint", required=True,
                   help="the server URL `vla serve` prints, e.g. http://127.0.0.1:8000/v1 "
                        "(with or without /v1)")
    p.add_argument("--model-dir", required=True,
                   help="the served model's directory (tokenizer and trajectory codec)")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--out", required=True)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--limit", type=int, default=None,
                   help="only K samples, drawn at random, stratified by scenario")
    p.add_argument("--seed", type=int, default=0, help="of the --limit draw")
    p.add_argument("--served-name", default=None)
    p.add_argument("--api-key", default=None)
    p.set_defaults(func=_cmd_rollout)


def _add_demo_parser(sub) -> None:
    """``vla demo``: the whole pipeline, its scale and its sizes."""
    p = sub.add_parser("demo", help="the whole pipeline: data, model, stage 1, LoRA SFT, vLLM, "
                                    "GRPO, open- and closed-loop evaluation, trace report")
    p.add_argument("--scale", default="tiny", choices=["tiny", "small"])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--episodes", type=int, default=60, help="simulated episodes for the data")
    p.add_argument("--grpo-steps", type=int, default=24)
    p.add_argument("--stage1-steps", type=int, default=None,
                   help="stage-1 steps (default: train/configs/<scale>_stage1.yaml)")
    p.add_argument("--stage2-steps", type=int, default=None,
                   help="stage-2 steps (default: train/configs/<scale>_stage2.yaml)")
    p.add_argument("--train-threads", type=int, default=2,
                   help="torch threads for stages 1 and 2 (nothing else runs beside them)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes for the data build and the closed loop (default: 2)")
    p.add_argument("--eval-samples", type=int, default=None,
                   help="test samples of the stage-2 validation (default: 102)")
    p.add_argument("--open-loop-samples", type=int, default=None,
                   help="test samples of the open-loop evaluation (default: 102)")
    p.add_argument("--open-loop-k", type=int, default=None,
                   help="samples averaged for the open loop's mean-of-k ADE (default: 2)")
    p.add_argument("--closed-loop-episodes", type=int, default=None,
                   help="closed-loop episodes (default: the whole eval/scenarios/demo.yaml)")
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``vla`` parser: every subcommand, in the order ``vla --help`` lists them."""
    from vla.analysis.cli import add_codec_parser
    from vla.data.cli import add_data_parser
    from vla.evaluation.cli import add_parser as add_eval_parser
    from vla.rl.audit import add_rewards_parser
    from vla.trace_tools.cli import add_parser as add_traces_parser

    parser = argparse.ArgumentParser(prog="vla", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_env_parser(sub)
    _add_model_parser(sub)
    _add_predict_parser(sub)
    _add_serve_parser(sub)
    add_data_parser(sub)
    add_codec_parser(sub)
    _add_rollout_parser(sub)
    add_rewards_parser(sub)
    add_eval_parser(sub)
    add_traces_parser(sub)
    _add_demo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
