"""A top-down, ego-centred view (heading up) for the viewer and ``vla data show``."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vla.render.camera import GRASS, MARKING, ROAD
from vla.render.scene import AgentBox, RoadGeometry

EGO_COLOR = (60, 200, 90)
AGENT_COLOR = (60, 110, 220)
HIGHLIGHT = (250, 170, 30)
STOPPED_COLOR = (200, 60, 60)


def render_topdown(ego: AgentBox, agents: list[AgentBox], road: RoadGeometry, size: int = 192,
                   metres_per_pixel: float = 0.5, trajectories=(),
                   highlight: frozenset[int] = frozenset()) -> np.ndarray:
    """Top-down image; ``trajectories`` are ((T, 2) ego-frame arrays, RGB colour) pairs."""
    image = Image.new("RGB", (size, size), GRASS)
    draw = ImageDraw.Draw(image)
    c, s = np.cos(ego.yaw), np.sin(ego.yaw)
    origin = np.array([ego.x, ego.y])
    cx, cy = size / 2, size * 0.7

    def to_px_world(xy: np.ndarray) -> np.ndarray:
        d = xy - origin
        fwd = d[..., 0] * c + d[..., 1] * s
        left = -d[..., 0] * s + d[..., 1] * c
        return to_px_ego(np.stack([fwd, left], axis=-1))

    def to_px_ego(xy: np.ndarray) -> np.ndarray:
        return np.stack([cx - xy[..., 1] / metres_per_pixel,
                         cy - xy[..., 0] / metres_per_pixel], axis=-1)

    reach = size * metres_per_pixel
    surfaces, lines, dashes = road.polygons_near(origin, reach)
    for polys, color in ((surfaces, ROAD), (lines, MARKING), (list(dashes), MARKING)):
        for poly in polys:
            draw.polygon([tuple(p) for p in to_px_world(poly)], fill=color)
    for agent in [*agents, ego]:
        if np.hypot(agent.x - ego.x, agent.y - ego.y) > reach:
            continue
        ac, as_ = np.cos(agent.yaw), np.sin(agent.yaw)
        hl, hw = agent.length / 2, agent.width / 2
        local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
        corners = np.array([agent.x, agent.y]) + local @ np.array([[ac, as_], [-as_, ac]])
        if agent is ego:
            color = EGO_COLOR
        elif agent.agent_id in highlight:
            color = HIGHLIGHT
        else:
            color = STOPPED_COLOR if agent.kind != "car" else AGENT_COLOR
        draw.polygon([tuple(p) for p in to_px_world(corners)], fill=color, outline=(0, 0, 0))
        if agent.braking:
            rear = to_px_world(corners[2:4])
            draw.line([tuple(p) for p in rear], fill=(255, 40, 30), width=2)
    for trajectory, color in trajectories:
        pts = to_px_ego(np.vstack([[0.0, 0.0], np.asarray(trajectory)[:, :2]]))
        draw.line([tuple(p) for p in pts], fill=color, width=2)
    return np.asarray(image)
