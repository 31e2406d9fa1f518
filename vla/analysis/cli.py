"""``vla codec ...``: bench the trajectory codecs, fit and save one beside a model, and
measure how much of the future the prompt's numbers determine."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _load(args: argparse.Namespace):
    """(spec, train, test, source) from --data or --synthetic."""
    import datasets

    from vla.trajectory.data import load_splits

    datasets.disable_progress_bars()
    if args.data:
        spec, splits = load_splits(args.data, ("train", "test"))
        source = f"data set {args.data}"
    else:
        from vla.analysis.synthetic_data import save_synthetic_dataset

        with tempfile.TemporaryDirectory() as tmp:
            save_synthetic_dataset(Path(tmp) / "synthetic", args.synthetic, seed=args.seed)
            spec, splits = load_splits(Path(tmp) / "synthetic", ("train", "test"))
        source = f"synthetic ({args.synthetic} trajectories, seed {args.seed})"
    train = splits["train"].subset(args.max_train)
    test = splits["test"].subset(args.max_test)
    return spec, train, test, source


def _cmd_bench(args: argparse.Namespace) -> int:
    from vla.analysis import codec_bench as bench

    spec, train, test, source = _load(args)
    settings = bench.quick_settings() if args.quick else bench.default_settings()
    if args.codecs:
        wanted = set(args.codecs.split(","))
        settings = [s for s in settings if s.codec in wanted]
    bench.stderr_log(f"bench: {source}; {len(train)} train / {len(test)} test trajectories, "
                     f"{spec.horizon_s} s at {spec.hz} Hz; {len(settings)} settings")
    rows = bench.run_bench(spec, train, test, settings, log=bench.stderr_log)
    reference = bench.reference_row(spec, test)
    paths = bench.write_outputs(rows, reference, args.out, source)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"Data: {source}\n")
        print(bench.format_table(rows, reference["comfort_share"]))
        best = bench.best_fixed(rows, 16)
        if best:
            print(f"\nBest fixed-length codec with <= 16 tokens: {best['setting']}: "
                  f"{best['tokens']:.0f} tokens, ADE mean {best['ade_mean']:.4f} m")
        print(f"\nwrote {paths['json']}, {paths['table']}, {paths['plot']}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from vla.trajectory.data import load_splits
    from vla.trajectory.registry import DEFAULT_CODEC, make_codec

    spec, splits = load_splits(args.data, ("train",))
    name, settings = (args.codec, {}) if args.codec else DEFAULT_CODEC
    settings = dict(settings)
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        settings[key] = _parse_value(value)
    codec = make_codec(name, hz=spec.hz, horizon_s=spec.horizon_s, **settings)
    train = splits["train"]
    codec.fit(train.trajectories, train.egos)
    codec.save(args.out)
    print(f"fitted {codec.describe()} on {len(train)} trajectories: {codec.num_tokens} tokens, "
          f"vocab {codec.vocab_size}; saved to {args.out}")
    return 0


def _cmd_predictability(args: argparse.Namespace) -> int:
    import datasets

    from vla.analysis import predictability
    from vla.analysis.codec_bench import stderr_log

    datasets.disable_progress_bars()
    if min(args.codebook_sizes) < 2:
        raise SystemExit(f"--codebook-sizes must each be >= 2, got {args.codebook_sizes}")
    if args.max_iter < 1:
        raise SystemExit(f"--max-iter must be >= 1, got {args.max_iter}")
    config = predictability.PredictabilityConfig(
        data=args.data, codebook_sizes=tuple(args.codebook_sizes),
        with_decisions=args.with_decisions, max_iter=args.max_iter)
    result = predictability.run_predictability(config, log=stderr_log)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(predictability.format_table(result))
    return 0


def add_codec_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``vla codec {bench,fit,predictability}`` to the ``vla`` subcommands."""
    codec = sub.add_parser("codec", help="trajectory codecs: bench, fit and save; "
                                         "predictability of the trajectory from the prompt")
    codec_sub = codec.add_subparsers(dest="codec_command", required=True)

    p = codec_sub.add_parser("bench", help="fit every codec on train, measure on test")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a built data set (save_to_disk directory)")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="generate N synthetic trajectories (80/10/10 split) instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic generator")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--out", default="runs/codec_bench", help="where to write json/md/png")
    p.add_argument("--codecs", default=None, help="comma-separated codec names to keep")
    p.add_argument("--quick", action="store_true", help="one small setting per codec")
    p.add_argument("--max-train", type=int, default=None)
    p.add_argument("--max-test", type=int, default=None)
    p.set_defaults(func=_cmd_bench)

    p = codec_sub.add_parser("fit", help="fit a codec on a data set's train split and save it")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="directory (e.g. beside a model)")
    p.add_argument("--codec", default=None, help="codec name (default: the default codec)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config setting")
    p.set_defaults(func=_cmd_fit)

    p = codec_sub.add_parser("predictability",
                           help="how well tabular learners predict the trajectory (ADE@3 s) "
                                "from the prompt's numbers, per codebook size")
    p.add_argument("--data", required=True, help="a built data set (train and test splits)")
    p.add_argument("--codebook-sizes", type=int, nargs="+", default=[16, 64], metavar="K")
    p.add_argument("--with-decisions", action="store_true",
                   help="also give the learners the labelled meta-action (the ceiling)")
    p.add_argument("--max-iter", type=int, default=100, help="boosting rounds")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_predictability)
