"""Pictures for the HTML report: the camera grid of a sample and a top-down trajectory plot.

Both return PNG bytes; :func:`data_uri` inlines them (and any file, e.g. a closed-loop
episode's GIF) as a base64 ``data:`` URI so the page needs nothing else. The top-down plot
uses matplotlib's object API (no pyplot state), so the web app can draw from any thread.
"""

from __future__ import annotations

import base64
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# The data set's top-down view (vla/render/topdown.py defaults): ego-centred, heading up,
# 0.5 m per pixel, the ego at 70 % of the height.
TOPDOWN_METRES_PER_PIXEL = 0.5
TOPDOWN_EGO_ROW = 0.7
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def file_data_uri(path: Path) -> str | None:
    """A file inlined as a data URI, or None when it cannot be read."""
    try:
        payload = path.read_bytes()
    except OSError:
        return None
    return data_uri(payload, mimetypes.guess_type(path.name)[0] or "application/octet-stream")


def camera_grid(images: list, names: list[str] | None = None,
                times: list[float] | None = None, cameras: int | None = None) -> bytes:
    """Frames as rows, cameras as columns (the data set's order: frame-major)."""
    images = [im.convert("RGB") for im in images]
    if not images:
        raise ValueError("no images")
    if cameras is None:
        cameras = len(dict.fromkeys(names)) if names else len(images)
    rows = -(-len(images) // cameras)
    w, h = images[0].width, images[0].height
    grid = Image.new("RGB", (w * cameras, h * rows), (0, 0, 0))
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        r, c = divmod(i, cameras)
        grid.paste(image.resize((w, h)), (c * w, r * h))
        label = " ".join(x for x in (names[i] if names else "",
                                     f"t={times[i]}s" if times else "") if x)
        if label:
            draw.text((c * w + 3, r * h + 2), label, fill=(255, 255, 255))
    return png_bytes(grid)


@dataclass
class PlotTrajectory:
    points: list            # [[x, y, ...], ...] ego frame, metres
    color: str
    label: str
    dashed: bool = False    # drawn dashed: an inconsistent record


def topdown_plot(trajectories: list[PlotTrajectory], future=None, background=None,
                 agents: list[dict] | None = None, title: str = "") -> bytes:
    """Ego-frame plot (forward up, left to the left) of the ground-truth future and every
    predicted trajectory, over the sample's top-down view when given; ``agents`` are the
    critical agents (``id``, ``position_m``) to mark."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.4, 4.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = [0.0], [0.0]
    if background is not None:
        size_x, size_y = background.width, background.height
        cx, cy = size_x / 2, size_y * TOPDOWN_EGO_ROW
        m = TOPDOWN_METRES_PER_PIXEL
        extent = (cx * m, (cx - size_x) * m, (cy - size_y) * m, cy * m)
        ax.imshow(np.asarray(background.convert("RGB")), extent=extent, origin="upper",
                  interpolation="nearest")
        ys += [extent[0], extent[1]]
        xs += [extent[2], extent[3]]
    if future is not None and len(future):
        f = np.asarray(future, float)
        ax.plot(np.r_[0, f[:, 1]], np.r_[0, f[:, 0]], color="black", lw=3.0, alpha=0.8,
                label="ground truth", zorder=3)
        xs += list(f[:, 0])
        ys += list(f[:, 1])
    for t in trajectories:
        p = np.asarray(t.points, float)
        if p.ndim != 2 or len(p) == 0:
            continue
        ax.plot(np.r_[0, p[:, 1]], np.r_[0, p[:, 0]], color=t.color, lw=1.6,
                ls="--" if t.dashed else "-", label=t.label, zorder=4)
        xs += list(p[:, 0])
        ys += list(p[:, 1])
    for a in agents or []:
        pos = a.get("position_m")
        if pos is None:
            continue
        ax.scatter([pos[1]], [pos[0]], s=60, marker="s", facecolor="none",
                   edgecolor="#ffb000", lw=2, zorder=5)
        ax.annotate(f"id {a.get('id')}", (pos[1], pos[0]), xytext=(4, 4),
                    textcoords="offset points", color="#b36b00", fontsize=7, zorder=6)
        xs.append(pos[0])
        ys.append(pos[1])
    pad, ratio = 5.0, 1.45                  # ratio: the axes' height / width on the figure
    x0, x1, y0, y1 = min(xs) - pad, max(xs) + pad, min(ys) - pad, max(ys) + pad
    if (x1 - x0) / (y1 - y0) > ratio:       # widen (or heighten) about the centre: equal axes
        half = (x1 - x0) / ratio / 2
        y0, y1 = (y0 + y1) / 2 - half, (y0 + y1) / 2 + half
    else:
        half = (y1 - y0) * ratio / 2
        x0, x1 = (x0 + x1) / 2 - half, (x0 + x1) / 2 + half
    ax.set_ylim(x0, x1)
    ax.set_xlim(y1, y0)                     # left (+y) on the left
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("lateral y (m, left +)", fontsize=7)
    ax.set_ylabel("forward x (m)", fontsize=7)
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    if trajectories or future is not None:
        ax.legend(fontsize=5, loc="lower left", framealpha=0.7, ncol=3, handlelength=1.5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
