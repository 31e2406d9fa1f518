"""The documentation: README.md as a short entry point, docs/ pages that exist and link to
files that exist, and the command-line reference generated from the argument parser."""

import argparse
import re
from pathlib import Path

from vla.cli_reference import REGENERATE, render_cli_reference

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
DOCS_PAGES = ("install.md", "data.md", "training.md", "grpo.md", "serving.md", "evaluation.md",
              "traces.md", "codecs.md", "cli.md", "demo.md", "model.md", "architecture.md",
              "results/README.md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_readme_is_an_entry_point_of_at_most_250_lines():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_docs_pages_exist_and_the_readme_links_each():
    readme = (ROOT / "README.md").read_text()
    for page in DOCS_PAGES:
        assert (ROOT / "docs" / page).is_file(), f"docs/{page} is missing"
        assert f"(docs/{page})" in readme, f"README.md does not link docs/{page}"


def test_every_relative_link_points_at_an_existing_file():
    dead = []
    for path in _markdown_files():
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            file = target.split("#", 1)[0]
            if not (path.parent / file).exists():
                dead.append(f"{path.relative_to(ROOT)}: {target}")
    assert not dead, "links to missing files:\n" + "\n".join(dead)


def test_cli_reference_lists_subcommands_arguments_and_defaults():
    parser = argparse.ArgumentParser(prog="vla")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run something")
    run.add_argument("file")
    run.add_argument("--steps", type=int, default=3, help="how many | which")
    run.add_argument("--fast", action="store_true")
    group = run.add_mutually_exclusive_group(required=True)
    group.add_argument("--model")
    group.add_argument("--endpoint")
    text = render_cli_reference(parser)
    assert "| [`vla run`](#vla-run) | run something |" in text
    assert ("## `vla run`\n\nRun something.\n\n```\nvla run [-h] [--steps STEPS] [--fast] "
            "(--model MODEL | --endpoint ENDPOINT) file\n```" in text)
    assert "| `file` | – | yes |  |" in text
    assert "| `--steps STEPS` | `3` |  | how many \\| which |" in text
    assert "| `--fast` | flag |  |  |" in text
    assert "Exactly one of `--model`, `--endpoint`." in text


def test_docs_cli_md_is_the_generated_reference():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render_cli_reference(), (
        f"docs/cli.md differs from the argument parser; regenerate it with `{REGENERATE}`")
