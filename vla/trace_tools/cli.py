"""``vla traces ls|show|stats|report|view``: inspect reasoning-trace files.

Bad input (a missing file, a torn or non-JSON line, an unknown ``--id``, a bad ``--filter``,
a data set that does not load) ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vla.trace_tools import TraceToolError

FILTER_HELP = ("keep records matching EXPR, e.g. 'parsed == false', 'kind == grpo and "
               "rewards.consistency.value < 0.5', 'decision_correct_lon == false', "
               "'planner == model', 'verdict == inconsistent'; dotted field paths, "
               "== != < <= > >= contains, and / or / not, parentheses")


def add_parser(sub) -> None:
    tr = sub.add_parser("traces", help="inspect reasoning-trace files (JSONL)")
    tr_sub = tr.add_subparsers(dest="traces_command", required=True)

    p = tr_sub.add_parser("ls", help="one line per record")
    p.add_argument("file")
    p.add_argument("--filter", default=None, metavar="EXPR", help=FILTER_HELP)
    p.add_argument("--limit", type=int, default=None, help="print at most N records")
    p.set_defaults(func=_guard(_cmd_ls))

    p = tr_sub.add_parser("show", help="one record: reasoning with cited agents, "
                                       "meta-actions, rewards, metrics, verdict")
    p.add_argument("file")
    p.add_argument("--id", type=int, required=True, help="record id (line number, see ls)")
    p.add_argument("--data", default=None, help="the data set of the samples (critical agents)")
    p.set_defaults(func=_guard(_cmd_show))

    p = tr_sub.add_parser("stats", help="counts per kind, parse / consistency rates, ADE, "
                                        "rewards, per scenario")
    p.add_argument("file")
    p.add_argument("--filter", default=None, metavar="EXPR", help=FILTER_HELP)
    p.add_argument("--data", default=None, help="look scenarios up in this data set")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guard(_cmd_stats))

    for name, helptext in (("report", "a self-contained HTML page"),
                           ("view", "browse and filter in a local web app")):
        p = tr_sub.add_parser(name, help=helptext)
        p.add_argument("file")
        p.add_argument("--data", default=None,
                       help="the data set of the samples: camera grid, ground truth, agents")
        p.add_argument("--model-dir", default=None,
                       help="decode text-only (grpo) trajectories with this model's codec "
                            "(default: the `base` of a config.json beside the trace file)")
        p.add_argument("--limit", type=int, default=200, help="at most N sample groups")
        if name == "report":
            p.add_argument("--filter", default=None, metavar="EXPR", help=FILTER_HELP)
            p.add_argument("--out", required=True, help="the HTML file to write")
            p.set_defaults(func=_guard(_cmd_report))
        else:
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=0, help="0: any free port")
            p.set_defaults(func=_guard(_cmd_view))


def _guard(command):
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except TraceToolError as exc:
            print(f"vla traces {args.traces_command}: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:          # `vla traces ls FILE | head`
            sys.stderr.close()
            return 0
    return run


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def _filter(expression):
    from vla.trace_tools.query import parse_filter

    return None if expression is None else parse_filter(expression)


def _samples(data):
    if data is None:
        return None
    from vla.trace_tools.sample_lookup import SampleIndex

    return SampleIndex(data)


def _cmd_ls(args: argparse.Namespace) -> int:
    from vla.trace_tools.load import load_trace_file
    from vla.trace_tools.ls import list_lines

    flt = _filter(args.filter)
    trace = load_trace_file(args.file)
    entries = trace.select(flt)
    for line in list_lines(entries, len(trace.entries), args.limit, args.filter):
        print(line)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from vla.trace_tools.load import load_trace_file
    from vla.trace_tools.show import render_show

    samples = _samples(args.data)
    trace = load_trace_file(args.file, None if samples is None else samples.info)
    entry = trace.by_id(args.id)
    critical = None
    if samples is not None:
        sid = entry.facts.sample_id
        if sid not in samples:
            print(f"note: sample {sid} is not in {args.data}", file=sys.stderr)
        critical = samples.critical(sid)
    render_show(entry, _console(), critical)
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    import json

    from vla.trace_tools.load import load_trace_file
    from vla.trace_tools.stats import compute_stats, print_stats

    flt = _filter(args.filter)
    samples = _samples(args.data)
    trace = load_trace_file(args.file, None if samples is None else samples.info)
    stats = compute_stats([e.facts for e in trace.select(flt)])
    if args.json:
        print(json.dumps(stats))
    else:
        print_stats(stats, _console(), str(trace.path))
    return 0


def _renderer(args: argparse.Namespace):
    from vla.trace_tools.report import ReportRenderer
    from vla.trace_tools.sample_lookup import TrajectoryDecoder, find_model_dir

    samples = _samples(args.data)
    model_dir = find_model_dir(Path(args.file), args.model_dir)
    decoder = TrajectoryDecoder(model_dir) if model_dir is not None and samples else None
    return ReportRenderer(Path(args.file), samples, decoder), samples


def _cmd_report(args: argparse.Namespace) -> int:
    import time

    from vla.trace_tools.load import load_trace_file
    from vla.trace_tools.report import ReportConfig, write_report

    t0 = time.perf_counter()
    flt = _filter(args.filter)
    if not Path(args.file).is_file():
        load_trace_file(args.file)          # the one-line error
    renderer, samples = _renderer(args)
    trace = load_trace_file(args.file, None if samples is None else samples.info)
    entries = trace.select(flt)
    out = write_report(renderer, trace, entries,
                       ReportConfig(limit=args.limit, filter_expression=args.filter), args.out)
    print(f"wrote {out} ({len(entries)} records, {out.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from vla.trace_tools.load import load_trace_file
    from vla.trace_tools.server import TraceStore, ViewConfig, create_app, serve

    if not Path(args.file).is_file():
        load_trace_file(args.file)
    renderer, samples = _renderer(args)
    store = TraceStore(Path(args.file), None if samples is None else samples.info)
    app = create_app(store, renderer, limit=args.limit)
    serve(app, ViewConfig(Path(args.file), args.host, args.port, args.limit),
          announce=lambda line: print(line, flush=True))
    return 0
