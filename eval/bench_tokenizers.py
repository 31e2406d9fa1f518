"""Bench the trajectory tokenizers and print the table.

    python eval/bench_tokenizers.py --data DIR            # a built data set
    python eval/bench_tokenizers.py --synthetic 12000     # the synthetic stand-in

Same options as ``vla tokenizer bench`` (the logic is in ``vla.trajectory.bench``).
"""

import sys

from vla.trajectory.cli import run_tokenizer_command


def main(argv: list[str] | None = None) -> int:
    return run_tokenizer_command("bench", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
