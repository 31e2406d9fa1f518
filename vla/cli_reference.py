"""The command-line reference, generated from the ``vla`` argument parser.

``render_cli_reference()`` walks ``vla.cli.build_parser()`` depth first and writes one Markdown
section per command: its help line, its usage and a table of its arguments (name, default,
required, help). ``python -m vla.cli_reference > docs/cli.md`` regenerates the page; a test
checks the committed page equals what the parser says, so it cannot go stale.

Usage lines are wrapped at a fixed width (not the terminal's) so the output does not depend on
where it is generated.
"""

from __future__ import annotations

import argparse
import sys

REGENERATE = "python -m vla.cli_reference > docs/cli.md"
USAGE_WIDTH = 100
MISSING = "–"


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = _formatter(parser)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups,
                        prefix="")
    return formatter.format_help().strip()


def _cell(text: str) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    if action.nargs == 0:  # a flag: store_true / store_const / count
        return "flag"
    value = action.default
    if value is None or value is argparse.SUPPRESS:
        return MISSING
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value) if value else "(none)"
    return f"`{value}`"


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = _formatter(parser)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = formatter._format_action_invocation(action)
        help_text = formatter._expand_help(action) if action.help else ""
        required = "yes" if action.required or not action.option_strings else ""
        rows.append(f"| `{_cell(name)}` | {_cell(_default(action))} | {required} | "
                    f"{_cell(help_text)} |")
    return rows


def _exclusive_groups(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for group in parser._mutually_exclusive_groups:
        names = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions
                          if a.option_strings)
        lines.append(f"{'Exactly' if group.required else 'At most'} one of {names}.")
    return lines


def _subcommands(parser: argparse.ArgumentParser):
    """``(name, help, subparser)`` for each subcommand of ``parser``, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _sections(parser: argparse.ArgumentParser, help_text: str, depth: int) -> list[str]:
    lines = [f"{'#' * min(depth, 6)} `{parser.prog}`", ""]
    if help_text:
        lines += [_cell(help_text[0].upper() + help_text[1:]) + ".", ""]
    lines += ["```", _usage(parser), "```", ""]
    children = list(_subcommands(parser))
    if children:
        lines += ["| subcommand | what it does |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(text)} |" for name, text, _ in children]
        lines.append("")
    arguments = _argument_rows(parser)
    if arguments:
        lines += ["| argument | default | required | help |", "|---|---|---|---|", *arguments,
                  ""]
    groups = _exclusive_groups(parser)
    if groups:
        lines += [*groups, ""]
    for _, text, sub in children:
        lines += _sections(sub, text, depth + 1)
    return lines


def render_cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference of every ``vla`` subcommand, its help and its arguments."""
    if parser is None:
        from vla.cli import build_parser

        parser = build_parser()
    top = [(name, text) for name, text, _ in _subcommands(parser)]
    lines = ["# Command-line reference", "",
             f"Generated from the argument parser (`vla.cli.build_parser`) by `{REGENERATE}`; "
             "do not edit by hand. `vla COMMAND --help` prints the same.", "",
             "| command | what it does |", "|---|---|",
             *(f"| [`vla {name}`](#vla-{name}) | {_cell(text)} |" for name, text in top), ""]
    for _, text, sub in _subcommands(parser):
        lines += _sections(sub, text, 2)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    sys.stdout.write(render_cli_reference())
    return 0


if __name__ == "__main__":
    sys.exit(main())
