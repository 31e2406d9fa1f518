"""Print the validation table of finished training stages (their ``result.json``) as Markdown.

python eval/train_table.py runs/tiny/stage1 runs/tiny/stage2 runs/tiny/stage2_blank
"""

import argparse

from vla.training.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="stage output folders")
    print(markdown_table(parser.parse_args().runs))


if __name__ == "__main__":
    main()
