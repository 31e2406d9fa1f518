"""``vla data build | convert | check | show``."""

from __future__ import annotations

import json


def _build(args) -> int:
    from vla.data.build import BuildConfig, build_dataset, rig_sample_config
    from vla.sim.recipes import load_recipe

    cameras = tuple(args.cameras.split(",")) if args.cameras else None
    try:  # a bad recipe or setting is one line, before anything is simulated
        samples = rig_sample_config(load_recipe(args.recipe), cameras=cameras,
                                    frames=args.frames, image_width=args.width,
                                    image_height=args.height)
        config = BuildConfig(recipe=args.recipe, episodes=args.episodes, seed=args.seed,
                             workers=args.workers, samples=samples)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"vla data build: {exc}") from None
    meta = build_dataset(config, args.out)
    print(f"wrote {meta['samples']} samples from {meta['episodes_kept']} episodes to {args.out} "
          f"({meta['dropped_episodes']} dropped: {meta['dropped_reasons']}); "
          f"{meta['keyframes_per_min_per_core']} keyframes/min/core, "
          f"{meta['build_wall_seconds']} s")
    return 0


def _convert(args) -> int:
    """Convert driving logs (nuScenes, PhysicalAI-AV) into a data set."""
    cameras = tuple(args.cameras.split(",")) if args.cameras else None
    common = {"root": args.root, "out": args.out, "image_width": args.width,
              "image_height": args.height, "seed": args.seed,
              **({"cameras": cameras} if cameras else {})}
    try:
        if args.format == "nuscenes":
            from vla.convert.nuscenes import NuScenesConfig, convert_nuscenes

            meta = convert_nuscenes(NuScenesConfig(version=args.version, **common))
        else:
            from vla.convert.physicalai_av import PhysicalAIConfig, convert_physicalai_av

            meta = convert_physicalai_av(PhysicalAIConfig(grid_s=args.grid_s, **common))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise SystemExit(f"vla data convert {args.format}: {exc}") from None
    print(f"wrote {meta['samples']} samples from {meta['episodes']} scenes or clips to "
          f"{args.out} (splits {meta['split_samples']}); left out, by reason: "
          f"{meta['skipped'] or 'none'}")
    return 0


def _check(args) -> int:
    from vla.data.check import check_dataset

    report = check_dataset(args.dir)
    if args.json:
        print(json.dumps(report))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"vla data check {args.dir}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in report.items():
            if key not in ("distribution", "problems", "split_events", "skipped_checks"):
                table.add_row(key, str(value))
        splits = list(report["split_events"])
        events = sorted({e for counts in report["split_events"].values() for e in counts})
        per_event = Table(title="episodes per event and split")
        per_event.add_column("event")
        for split in splits:
            per_event.add_column(split, justify="right")
        for event in events:
            per_event.add_row(event, *(str(report["split_events"][s].get(event, 0))
                                       for s in splits))
        dist = Table(title="decisions")
        dist.add_column("longitudinal / lateral")
        dist.add_column("samples", justify="right")
        for key, value in report["distribution"].items():
            dist.add_row(key, str(value))
        console = Console()
        console.print(table)
        console.print(per_event)
        console.print(dist)
        for check, why in report["skipped_checks"].items():
            console.print(f"[yellow]skipped:[/] {check}: {why}")
        for problem in report["problems"]:
            console.print(f"[red]problem:[/] {problem}")
    return 0 if report["ok"] else 1


def _show(args) -> int:
    from vla.data.show import show_sample

    print(f"wrote {show_sample(args.dir, args.index, args.out, split=args.split)}")
    return 0


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="build, check and show driving-scene data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("build", help="simulate episodes and write a data set")
    p.add_argument("--recipe", default="default", metavar="NAME|FILE",
                   help="a packaged recipe (default, highway, merge, intersection, roundabout: "
                        "data_recipes/*.yaml) or a recipe file (.yaml)")
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    # the camera rig: each flag given replaces the recipe's value
    p.add_argument("--cameras", default=None,
                   help="comma-separated: front_left, front_wide, front_tele, front_right, "
                        "front, rear (default: the recipe's camera rig)")
    p.add_argument("--frames", type=int, default=None, help="default: the recipe's")
    p.add_argument("--width", type=int, default=None, help="default: the recipe's")
    p.add_argument("--height", type=int, default=None, help="default: the recipe's")
    p.set_defaults(func=_build)
    p = data_sub.add_parser(
        "convert", help="convert driving logs (nuScenes, PhysicalAI-AV) into a data set",
        description="Read a local copy of a driving-log data set (downloaded with its own "
                    "tools, under its own licence) and write a vla data set of the same "
                    "schema as a simulator build. The converted data must not be "
                    "redistributed. See docs/data.md.")
    p.add_argument("format", choices=("nuscenes", "physicalai-av"))
    p.add_argument("--root", required=True, help="the data set's folder")
    p.add_argument("--out", required=True, help="the data set to write (must not exist)")
    p.add_argument("--cameras", default=None,
                   help="comma-separated camera names of the log (default: nuScenes "
                        "CAM_FRONT_LEFT,CAM_FRONT,CAM_FRONT_RIGHT,CAM_BACK; PhysicalAI-AV "
                        "the front wide, front tele and two cross cameras)")
    p.add_argument("--width", type=int, default=224, help="image width, a multiple of 28")
    p.add_argument("--height", type=int, default=112, help="image height, a multiple of 28")
    p.add_argument("--seed", type=int, default=0, help="seed of the split by scene / clip")
    p.add_argument("--version", default="v1.0-mini", help="nuScenes: the tables' folder")
    p.add_argument("--grid-s", type=float, default=2.0,
                   help="PhysicalAI-AV: spacing (s) of the samples between reasoning events")
    p.set_defaults(func=_convert)
    p = data_sub.add_parser("check", help="validate a data set and print its distribution")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_check)
    p = data_sub.add_parser("show", help="render one sample to a PNG")
    p.add_argument("dir")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_show)


__all__ = ["add_data_parser"]
