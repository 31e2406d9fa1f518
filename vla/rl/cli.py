"""Command line of ``train/grpo.py``: ``--config FILE`` (YAML) and ``key=value`` overrides."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vla.rl.grpo import GRPOConfig


def load_grpo_config(path: str | None, overrides: list[str]) -> GRPOConfig:
    import yaml

    from vla.training.config import parse_overrides

    values = yaml.safe_load(Path(path).read_text()) if path else {}
    unknown = set(values) - {f.name for f in dataclasses.fields(GRPOConfig)}
    if unknown:
        raise ValueError(f"unknown GRPO config keys {sorted(unknown)}")
    values.update(parse_overrides(overrides, GRPOConfig))
    return GRPOConfig(**values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="GRPO on the SFT adapter, rollouts from vLLM")
    parser.add_argument("--config", help="YAML GRPO config")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    try:
        config = load_grpo_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    from vla.rl.grpo import run_grpo
    from vla.serving.urls import ServerUnreachable

    try:
        result = run_grpo(config)
    except ServerUnreachable as exc:
        sys.exit(f"error: {exc}")
    last = result["log"][-1] if result["log"] else {}
    print(f"GRPO done: {result['steps']} steps, adapter {result['adapter']}, "
          f"last mean reward {last.get('reward')}")
