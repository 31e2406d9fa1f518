"""Bench the trajectory codecs and print the table.

    python eval/bench_codecs.py --data DIR            # a built data set
    python eval/bench_codecs.py --synthetic 12000     # the synthetic stand-in

Same options as ``vla codec bench`` (the logic is in ``vla.analysis.codec_bench``).
"""

import sys

from vla.analysis.cli import run_codec_command


def main(argv: list[str] | None = None) -> int:
    return run_codec_command("bench", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
