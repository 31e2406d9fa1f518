"""Command line of the training entry points: ``--config FILE`` and ``key=value`` overrides."""

from __future__ import annotations

import argparse
import sys

from vla.training.config import load_run_config


def main(stage: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"vla training, stage {stage}")
    parser.add_argument("--config", help="YAML run config")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override a config value, e.g. max_steps=20")
    args = parser.parse_args(argv)
    try:
        config = load_run_config(args.config, args.overrides, stage=stage)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    from vla.training.run import run_stage

    run_stage(config)
