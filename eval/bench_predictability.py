"""How much of the future trajectory the prompt's numbers determine, and at which codebook size
a greedy (mode) decoder can use it; prints the table.

    python eval/bench_predictability.py --data DIR [--codebook-sizes 16 64] [--with-decisions]

Same options as ``vla codec predictability`` (the logic is in
``vla.analysis.predictability``).
"""

import sys

from vla.analysis.cli import run_codec_command


def main(argv: list[str] | None = None) -> int:
    return run_codec_command("predictability", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
