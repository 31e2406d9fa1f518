"""``vla eval open-loop`` and ``vla eval closed-loop``: a model policy (transformers or a vLLM
endpoint) against the reference rows and the kinematic baselines."""

from __future__ import annotations

import argparse
import json

from vla.model.expected_entry import TRAJECTORY_DECODINGS

CLOSED_LOOP_PLANNERS = ("expert", "expert-tracked", "damped-prior", "constant-velocity")
COLUMNS = ("parsed", "l2_at_1s", "l2_at_2s", "l2_at_3s", "l2_avg_1s", "l2_avg_2s", "l2_avg_3s",
           "ade", "fde", "collision", "off_road", "progress", "accuracy_lon", "accuracy_lat",
           "consistency", "correct_and_consistent", "grounding", "situation_admits")


def add_parser(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate a model")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    p = ev_sub.add_parser("open-loop", help="trajectories and decisions on logged scenes, "
                                            "beside constant velocity / acceleration / expert")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a vla model directory (transformers)")
    src.add_argument("--endpoint", help="URL of a vLLM server of a vla model, as `vla serve` "
                                        "prints it (with or without /v1)")
    p.add_argument("--adapter", help="with --model: a LoRA adapter to merge")
    p.add_argument("--model-dir", help="with --endpoint: the served model's directory "
                                       "(grammar and codec)")
    p.add_argument("--served-name", default=None, help="with --endpoint: model name to ask for "
                                                       "(default: the first the server lists)")
    p.add_argument("--data", required=True, action="append",
                   help="a data set (a simulator build or converted logs); repeat it to "
                        "evaluate several together, reported per source")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=6,
                   help="samples per scene for minADE and the mean-of-k trajectory (0: none)")
    p.add_argument("--temperature", type=float, default=1.0, help="of the k samples")
    p.add_argument("--trajectory-decoding", choices=TRAJECTORY_DECODINGS, default="greedy",
                   help="how the greedy output's trajectory tokens are chosen: the likeliest "
                        "entry, or the entry nearest the expected one")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate N samples drawn at random, stratified by scenario")
    p.add_argument("--seed", type=int, default=0, help="of the --limit draw")
    p.add_argument("--no-shortcut", action="store_true", help="skip the ego-shortcut runs")
    p.add_argument("--no-image-diagnostics", action="store_true",
                   help="skip the image diagnostic runs (the greedy output again with the "
                        "camera images blacked out, and with another sample's: two more "
                        "greedy outputs per sample)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="samples in flight at once (default: 8 with --endpoint, 1 with --model)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)

    c = ev_sub.add_parser("closed-loop", help="drive in highway-env: the model or a built-in "
                                              "planner, scored by the simulator")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a vla model directory (transformers; drives in this "
                                     "process, whatever --workers)")
    src.add_argument("--endpoint", help="URL of a vLLM server of a vla model, as `vla serve` "
                                        "prints it (with or without /v1)")
    src.add_argument("--planner", choices=CLOSED_LOOP_PLANNERS,
                     help="a built-in planner: the expert (IDM + MOBIL) driving itself, the "
                          "expert's own future through the tracker, the damped-acceleration "
                          "prior or constant velocity")
    c.add_argument("--adapter", help="with --model: a LoRA adapter to merge")
    c.add_argument("--model-dir", help="with --endpoint: the served model's directory")
    c.add_argument("--served-name", default=None, help="with --endpoint: model name to ask for "
                                                       "(default: the first the server lists)")
    c.add_argument("--scenarios", required=True, metavar="NAME|FILE",
                   help="a packaged scenario set (demo, benchmark, mixed: eval/scenarios/*.yaml) "
                        "or a YAML file")
    c.add_argument("--episodes", type=int, default=None,
                   help="episodes (default: the whole set, its episodes_per_scenario of each "
                        "entry)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--baselines", action="store_true",
                   help="also drive expert-tracked, damped-prior and constant-velocity (the "
                        "expert always drives: it is the progress reference)")
    c.add_argument("--workers", type=int, default=1,
                   help="episodes driven in parallel processes (results do not depend on it)")
    c.add_argument("--data", help="a data set whose camera settings the model was trained on "
                                  "(default: the data recipe's defaults)")
    c.add_argument("--traces", help="append closed_loop trace records to this JSONL file")
    c.add_argument("--gif", action="store_true", help="with --traces: a top-down GIF per episode")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_closed_loop)


def model_policy(args: argparse.Namespace, command: str, **settings):
    """The model policy of ``--model [--adapter]`` or ``--endpoint --model-dir
    [--served-name]`` (:func:`vla.policy_factory.make_policy`); a wrong endpoint or a missing
    option is one line naming ``command``."""
    from vla.policy_factory import make_policy
    from vla.serving.urls import ServerUnreachable

    if args.endpoint and not args.model_dir:
        raise SystemExit(f"{command}: --endpoint needs --model-dir (the served model's "
                         f"directory)")
    try:
        if args.model:
            return make_policy(model_dir=args.model, adapter=args.adapter, **settings)
        return make_policy(model_dir=args.model_dir, endpoint=args.endpoint,
                           served_model=args.served_name, **settings)
    except (ServerUnreachable, ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"{command}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from vla.data.build import load_dataset_dir
    from vla.data.subsets import stratified_subset, subset_record
    from vla.evaluation.open_loop import evaluate_open_loop
    from vla.model.expected_entry import entry_features_of
    from vla.reference import blind_policies

    samples, records, train = [], [], None
    for path in args.data:  # each data set's own stratified draw, in the order given
        try:
            dataset, _ = load_dataset_dir(path)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"vla eval open-loop: {exc}") from None
        if args.split not in dataset:
            raise SystemExit(f"{path} has no split {args.split!r}; it has {list(dataset)}")
        split = dataset[args.split]
        drawn, indices = stratified_subset(split, args.limit or None, args.seed,
                                           return_indices=True)
        samples += list(drawn)
        records.append({"data": str(path), "split": args.split,
                        **subset_record(indices, args.seed, len(split))})
        train = train if train is not None else dataset.get("train")
    policy = model_policy(args, "vla eval open-loop",
                          trajectory_decoding=args.trajectory_decoding)
    if args.trajectory_decoding == "expected":
        try:
            entry_features_of(policy.codec)
        except ValueError as exc:
            raise SystemExit(f"--trajectory-decoding expected: {exc}") from None
    concurrency = args.concurrency or (8 if args.endpoint else 1)
    result = evaluate_open_loop(policy, samples, policy.codec.spec.hz, k=args.k,
                                shortcut=not args.no_shortcut,
                                image_diagnostics=not args.no_image_diagnostics,
                                progress=not args.json,
                                concurrency=concurrency, temperature=args.temperature,
                                references=blind_policies(train))
    result["subset"] = records[0] if len(records) == 1 else records
    if args.json:
        print(json.dumps(result))
        return 0
    _print(result, args.k)
    return 0


def _print(result: dict, k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    columns = COLUMNS + ((f"min_ade_{k}",) if k else ())
    table = Table(title=f"open loop, {result['samples']} samples (l2_at: at the instant, "
                        f"UniAD; l2_avg: averaged up to it, ST-P3)")
    table.add_column("")
    for c in columns:
        table.add_column(c.replace("_", " "), justify="right")
    rows = {"model": result["model"],
            **({f"model, mean of {k} (T={result['temperature']})": result["model_mean_k"]}
               if "model_mean_k" in result else {}),
            **result.get("references", {}),
            **result["baselines"],
            **{f"model, {n}": m for n, m in result.get("shortcut", {}).items()},
            **{f"model, {n.replace('_', ' ')}": m
               for n, m in result.get("image_diagnostics", {}).items()}}
    for name, m in rows.items():
        table.add_row(name, *("–" if m.get(c) is None else f"{m[c]:.3f}" for c in columns))
    console.print(table)
    _print_image_diagnostics(console, result)
    _print_subsets(console, result)
    per = Table(title="model per scenario")
    for c in ("scenario", "samples", "ade", "l2_avg_3s", "collision", "consistency"):
        per.add_column(c)
    for s, m in result["per_scenario"].items():
        per.add_row(s, str(m["samples"]), *(f"{m.get(c, float('nan')):.3f}" for c in
                                            ("ade", "l2_avg_3s", "collision", "consistency")))
    console.print(per)
    _print_sources(console, result)


def _print_sources(console, result: dict) -> None:
    """The model per source, where logs are among the samples."""
    from rich.table import Table

    sources = result.get("per_source", {})
    if set(sources) <= {"sim"}:
        return
    table = Table(title="model per source (on logs: off-road and grounding not available, "
                        "collision neither without agent boxes)")
    columns = ("ade", "l2_avg_3s", "l2_avg_3s_2hz", "collision", "off_road", "accuracy_lon",
               "consistency")
    table.add_column("source")
    table.add_column("samples", justify="right")
    for c in columns:
        table.add_column(c.replace("_", " "), justify="right")
    for name, m in sources.items():
        table.add_row(name, str(m["samples"]), *(_cell(m, c) for c in columns))
    console.print(table)


IMAGE_DIAGNOSTIC_COLUMNS = ("samples", "meta_action_changed", "trajectory_shift",
                            "delta_accuracy_lon", "delta_accuracy_lat", "delta_consistency",
                            "delta_ade")
SUBSET_COLUMNS = ("accuracy_lon", "accuracy_lat", "consistency", "correct_and_consistent",
                  "l2_avg_3s")


def _cell(m: dict, c: str) -> str:
    value = m.get(c)
    if value is None:
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def _print_image_diagnostics(console, result: dict) -> None:
    """What changed when the images did: the share of samples whose meta-action changed, the
    mean distance between the plans (m), and each metric's change against the model."""
    from rich.table import Table

    rows = result.get("image_diagnostics")
    if not rows:
        return
    table = Table(title="model, images changed: the greedy output with every camera image "
                        "black, or with another sample's (scored against the sample's own "
                        "labels)")
    table.add_column("")
    for c in IMAGE_DIAGNOSTIC_COLUMNS:
        table.add_column(c.replace("_", " "), justify="right")
    for name, m in rows.items():
        table.add_row(name.replace("_", " "), *(_cell(m, c) for c in IMAGE_DIAGNOSTIC_COLUMNS))
    console.print(table)


def _print_subsets(console, result: dict) -> None:
    """The model, the references and the image diagnostics on the event samples and on free
    driving."""
    from rich.table import Table

    subsets = result.get("subsets")
    if not subsets:
        return
    table = Table(title="event samples (a vehicle brakes, cuts in, stands still or has right "
                        "of way) and free driving")
    for c in ("subset", "row", "samples", *SUBSET_COLUMNS):
        table.add_column(c.replace("_", " "), justify="right")
    for subset, part in subsets.items():
        rows = {"model": part.get("model", {}), **part.get("references", {}),
                **{f"model, {n.replace('_', ' ')}": m
                   for n, m in part.get("image_diagnostics", {}).items()}}
        for name, m in rows.items():
            samples = m.get("samples", part["samples"])
            table.add_row(subset, name, str(samples), *(_cell(m, c) for c in SUBSET_COLUMNS))
    console.print(table)


def closed_loop_planners(args: argparse.Namespace) -> list:
    from vla.evaluation import closed_loop as cl

    planners = []
    if args.model or args.endpoint:
        planners.append(cl.model_planner(model_policy(args, "vla eval closed-loop")))
    elif args.planner != "expert":  # the expert always drives
        planners.append(cl.make_planner(args.planner))
    if args.baselines:
        planners += [cl.make_planner(name) for name in cl.TRACKED_REFERENCE_PLANNERS
                     if not any(p.name == name for p in planners)]
    return planners


def run_closed_loop(args: argparse.Namespace) -> int:
    from vla.evaluation.closed_loop import ClosedLoopConfig, evaluate_closed_loop
    from vla.evaluation.scenarios import load_scenario_set
    from vla.sim.observation import SampleConfig

    if args.workers < 1:
        raise SystemExit("vla eval closed-loop: --workers must be >= 1")
    if args.episodes is not None and args.episodes < 1:
        raise SystemExit("vla eval closed-loop: --episodes must be >= 1")
    try:
        scenarios = load_scenario_set(args.scenarios)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"vla eval closed-loop: {exc}") from None
    sample = SampleConfig()
    if args.data:
        from vla.data.build import load_dataset_dir

        _, meta = load_dataset_dir(args.data)
        rig = {"horizon_row": 0.5, **meta["config"]["samples"]}  # built before horizon_row
        try:
            sample = SampleConfig(**rig)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"vla eval closed-loop: {args.data}: its camera rig cannot be "
                             f"rendered again: {exc}") from None
    config = ClosedLoopConfig(scenarios, sample=sample, gif=args.gif)
    result = evaluate_closed_loop(closed_loop_planners(args), config, args.episodes, args.seed,
                                  trace_path=args.traces, progress=not args.json,
                                  workers=args.workers)
    if args.json:
        print(json.dumps(result))
        return 0
    print_closed_loop(result)
    return 0


CLOSED_LOOP_COLUMNS = ("episodes", "collision_rate", "off_road_rate", "progress",
                       "ttc_violation_rate", "comfort_rate", "pdms_like",
                       "decision_accuracy_lon", "decision_accuracy_lat", "parse_rate")
PER_EVENT_COLUMNS = ("episodes", "collision_rate", "off_road_rate", "pdms_like",
                     "decision_accuracy_lon", "decision_accuracy_lat")


def ci_cell(m: dict, c: str) -> str:
    """``m[c]`` for a rich table, with its ``<c>_ci95`` interval when there is one."""
    if m.get(c) is None:
        return "–"
    if c == "episodes":
        return str(m[c])
    ci = m.get(f"{c}_ci95")
    return f"{m[c]:.3f}" + (f" \\[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def print_closed_loop(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=220)
    table = Table(title=f"closed loop: {result['scenario_set']}, {result['episodes']} episodes, "
                        f"seed {result['seed']} (\\[lo, hi]: 95 % bootstrap interval over "
                        f"episodes; PDMS-like: NAVSIM's formula on closed-loop inputs)")
    table.add_column("planner")
    for c in CLOSED_LOOP_COLUMNS:
        table.add_column(c.replace("_", " "), justify="right")
    table.add_column("s / episode", justify="right")
    for name, m in result["planners"].items():
        seconds = (result.get("seconds_per_episode") or {}).get(name)
        table.add_row(name, *(ci_cell(m, c) for c in CLOSED_LOOP_COLUMNS),
                      "–" if seconds is None else f"{seconds:.1f}")
    console.print(table)
    per = Table(title="per event")
    per.add_column("event")
    per.add_column("planner")
    for c in PER_EVENT_COLUMNS:
        per.add_column(c.replace("_", " "), justify="right")
    events = list(dict.fromkeys(e for m in result["planners"].values()
                                for e in m.get("per_event", {})))
    for event in events:
        for name, m in result["planners"].items():
            if event in m.get("per_event", {}):
                per.add_row(event, name, *(ci_cell(m["per_event"][event], c)
                                           for c in PER_EVENT_COLUMNS))
    console.print(per)
    paired = {n: m["vs_damped_prior"] for n, m in result["planners"].items()
              if "vs_damped_prior" in m}
    if paired:
        diff = Table(title="paired with damped-prior on the same episodes (planner minus prior)")
        for c in ("planner", "PDMS-like diff", "collision rate diff"):
            diff.add_column(c, justify="right")
        for name, m in paired.items():
            diff.add_row(name, ci_cell(m, "pdms_like_diff"), ci_cell(m, "collision_rate_diff"))
        console.print(diff)
