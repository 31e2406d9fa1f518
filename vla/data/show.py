"""``vla data show``: one sample as a picture: cameras × frames, top-down view, label."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vla.data.build import load_dataset_dir

TRAJECTORY_COLOR = (255, 60, 200)


def _topdown_with_future(topdown: Image.Image, future: np.ndarray, scale: float = 0.5):
    """Overlay the future (ego frame) on a top-down view rendered with the default layout."""
    image = topdown.convert("RGB").copy()
    size = image.width
    cx, cy = size / 2, size * 0.7
    pts = [(cx - y / scale, cy - x / scale) for x, y in np.vstack([[0, 0], future[:, :2]])]
    ImageDraw.Draw(image).line(pts, fill=TRAJECTORY_COLOR, width=2)
    return image


def render_sample(row: dict, cameras: list[str], frames: int) -> Image.Image:
    images = row["images"]
    w, h = images[0].width, images[0].height
    grid = Image.new("RGB", (w * len(cameras), h * frames), (0, 0, 0))
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        f, c = divmod(i, len(cameras))
        grid.paste(image.convert("RGB"), (c * w, f * h))
        draw.text((c * w + 3, f * h + 2), f"{row['camera_names'][i]} t={row['frame_times'][i]}s",
                  fill=(255, 255, 255))
    if row.get("topdown") is not None:
        top = _topdown_with_future(row["topdown"], np.asarray(row["future"]))
        top = top.resize((grid.height, grid.height), Image.NEAREST)
    else:  # a converted log has no top-down view
        top = Image.new("RGB", (0, grid.height))
    text = (f"{row['sample_id']}  {row['scenario']}  command: {row['command']}  "
            f"speed {row['ego_speed']:.1f} m/s\n"
            f"decision: {row['decision_lon']} / {row['decision_lat']}\n"
            + "\n".join(textwrap.wrap(row["reasoning"], 110)) + "\n"
            + "critical: " + "; ".join(
                f"{c.get('kind')} {c.get('id', c.get('rule', c.get('state', '')))} "
                f"{c.get('motion', '')}" for c in json.loads(row["critical"])))
    lines = text.count("\n") + 1
    canvas = Image.new("RGB", (grid.width + top.width, grid.height + 14 * lines + 8),
                       (250, 250, 250))
    canvas.paste(grid, (0, 0))
    canvas.paste(top, (grid.width, 0))
    ImageDraw.Draw(canvas).multiline_text((6, grid.height + 4), text, fill=(0, 0, 0), spacing=3)
    return canvas


def show_sample(path, index: int, out: str | Path, split: str = "train") -> Path:
    dataset, meta = load_dataset_dir(path)
    if split not in dataset:
        raise ValueError(f"unknown split {split!r}; the data set has {list(dataset)}")
    data = dataset[split]
    if not 0 <= index < len(data):
        raise IndexError(f"index {index} out of range: split {split!r} has {len(data)} samples")
    image = render_sample(data[index], meta["cameras"], meta["frames"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out
