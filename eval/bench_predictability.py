"""How much of the future trajectory the prompt's numbers determine, and at which codebook size
a greedy (mode) decoder can use it; prints the table.

    python eval/bench_predictability.py --data DIR [--codebook-sizes 16 64] [--with-decisions]

Same options as ``vla tokenizer predictability`` (the logic is in
``vla.trajectory.predictability``).
"""

import argparse
import sys

from vla.trajectory.cli import add_tokenizer_parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_tokenizer_parser(sub)
    args = parser.parse_args(["tokenizer", "predictability",
                              *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
