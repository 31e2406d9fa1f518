"""Bench the trajectory tokenizers and print the table.

    python eval/bench_tokenizers.py --data DIR            # a built data set
    python eval/bench_tokenizers.py --synthetic 12000     # the synthetic stand-in

Same options as ``vla tokenizer bench`` (the logic is in ``vla.trajectory.bench``).
"""

import argparse
import sys

from vla.trajectory.cli import add_tokenizer_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_tokenizer_parser(sub)
    args = parser.parse_args(["tokenizer", "bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
