"""A pinhole rasteriser: camera images from ground truth (road, markings, vehicle boxes).

Each camera sits on the ego vehicle (``forward_m`` ahead of its centre, ``height_m``
up, turned by ``yaw_deg``). The world is drawn back to front with PIL polygons
(painter's algorithm): sky and ground, road surface, lane markings, then vehicles as
shaded 3-D boxes from the farthest to the nearest, with brake lights on the rear face
that glow when the vehicle decelerates harder than 1 m/s². Polygons are clipped at a
near plane. Simplifications: flat ground, no lighting model beyond fixed face shades,
no occlusion within a box other than back-face culling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vla.render.scene import AgentBox, RoadGeometry

SKY = (135, 180, 225)
GRASS = (96, 128, 78)
ROAD = (82, 82, 88)
MARKING = (235, 235, 225)
BRAKE_ON = (255, 40, 30)
BRAKE_OFF = (110, 20, 20)
PALETTE = ((40, 90, 200), (200, 200, 205), (30, 30, 35), (170, 40, 40), (230, 190, 60),
           (60, 140, 90), (120, 70, 150), (210, 120, 50))
NEAR = 0.5
FAR = 160.0


@dataclass(frozen=True)
class CameraSpec:
    name: str
    yaw_deg: float
    hfov_deg: float = 90.0
    width: int = 160
    height: int = 96
    height_m: float = 1.5
    forward_m: float = 1.5

    def __post_init__(self) -> None:
        if not 10 <= self.hfov_deg <= 170:
            raise ValueError(f"camera {self.name}: hfov_deg must be in [10, 170]")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"camera {self.name}: image must be at least 16x16 pixels")

    @property
    def focal(self) -> float:
        return self.width / 2 / np.tan(np.radians(self.hfov_deg) / 2)


CAMERA_PRESETS = {
    "front_left": CameraSpec("front_left", 60.0),
    "front": CameraSpec("front", 0.0),
    "front_right": CameraSpec("front_right", -60.0),
    "rear": CameraSpec("rear", 180.0),
}


def camera_specs(names, width: int = 160, height: int = 96) -> list[CameraSpec]:
    """Camera specs for ``names`` (from :data:`CAMERA_PRESETS`) at one image size."""
    specs = []
    for name in names:
        if name not in CAMERA_PRESETS:
            raise ValueError(f"unknown camera {name!r}; known cameras: {sorted(CAMERA_PRESETS)}")
        base = CAMERA_PRESETS[name]
        specs.append(CameraSpec(base.name, base.yaw_deg, base.hfov_deg, width, height,
                                base.height_m, base.forward_m))
    return specs


class _Projector:
    def __init__(self, cam: CameraSpec, ego_x: float, ego_y: float, ego_yaw: float):
        yaw = ego_yaw + np.radians(cam.yaw_deg)
        self.c, self.s = np.cos(yaw), np.sin(yaw)
        self.origin = np.array([ego_x + cam.forward_m * np.cos(ego_yaw),
                                ego_y + cam.forward_m * np.sin(ego_yaw)])
        self.h = cam.height_m
        self.f = cam.focal
        self.cx, self.cy = cam.width / 2, cam.height / 2

    def to_camera(self, xy: np.ndarray, z: np.ndarray | float = 0.0) -> np.ndarray:
        """World points (..., 2) → camera (forward, left, up) (..., 3)."""
        d = xy - self.origin
        fwd = d[..., 0] * self.c + d[..., 1] * self.s
        left = -d[..., 0] * self.s + d[..., 1] * self.c
        up = np.broadcast_to(np.asarray(z, float) - self.h, fwd.shape)
        return np.stack([fwd, left, up], axis=-1)

    def pixels(self, pts: np.ndarray) -> np.ndarray:
        return np.stack([self.cx - self.f * pts[..., 1] / pts[..., 0],
                         self.cy - self.f * pts[..., 2] / pts[..., 0]], axis=-1)


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (K, 3) against forward >= NEAR."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[0] >= NEAR, b[0] >= NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (NEAR - a[0]) / (b[0] - a[0])
            out.append(a + t * (b - a))
    return np.array(out)


def _draw_polys(draw: ImageDraw.ImageDraw, proj: _Projector, polys_cam, color) -> None:
    """Draw camera-frame polygons (each (K, 3)), clipped at the near plane."""
    for poly in polys_cam:
        depth = poly[:, 0]
        if depth.max() <= NEAR or depth.min() >= FAR:
            continue
        if depth.min() < NEAR:
            poly = _clip_near(poly)
            if len(poly) < 3:
                continue
        draw.polygon([tuple(p) for p in proj.pixels(poly)], fill=color)


def _box_faces(agent: AgentBox, height: float):
    c, s = np.cos(agent.yaw), np.sin(agent.yaw)
    hl, hw = agent.length / 2, agent.width / 2
    local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
    xy = np.array([agent.x, agent.y]) + local @ np.array([[c, s], [-s, c]])
    front, right, rear, left = (0, 1), (1, 2), (2, 3), (3, 0)
    faces = []
    for name, (i, j) in (("front", front), ("right", right), ("rear", rear), ("left", left)):
        faces.append((name, np.array([xy[i], xy[j], xy[j], xy[i]]),
                      np.array([0.0, 0.0, height, height])))
    faces.append(("top", xy, np.full(4, height)))
    return xy, faces


def _shade(color, k: float):
    return tuple(int(min(255, max(0, v * k))) for v in color)


def render_camera(cam: CameraSpec, ego: AgentBox, agents: list[AgentBox],
                  road: RoadGeometry) -> np.ndarray:
    """One camera image (H, W, 3) uint8 seen from ``ego``; ``agents`` excludes the ego."""
    image = Image.new("RGB", (cam.width, cam.height), GRASS)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, cam.width, int(cam.height / 2)], fill=SKY)
    proj = _Projector(cam, ego.x, ego.y, ego.yaw)
    surfaces, lines, dashes = road.polygons_near(proj.origin, FAR)
    _draw_polys(draw, proj, [proj.to_camera(p) for p in surfaces], ROAD)
    _draw_polys(draw, proj, [proj.to_camera(p) for p in lines], MARKING)
    if len(dashes):
        _draw_polys(draw, proj, proj.to_camera(dashes), MARKING)
    cam_xy = proj.origin
    order = sorted(agents, key=lambda a: -np.hypot(a.x - cam_xy[0], a.y - cam_xy[1]))
    for agent in order:
        center_cam = proj.to_camera(np.array([agent.x, agent.y]))
        if center_cam[0] < -agent.length or center_cam[0] > FAR:
            continue
        base = PALETTE[agent.agent_id % len(PALETTE)]
        height = 1.6 if agent.kind == "car" else 1.4
        xy, faces = _box_faces(agent, height)
        for name, fxy, fz in faces:
            if name != "top":
                mid = fxy[:2].mean(axis=0)
                outward = mid - np.array([agent.x, agent.y])
                if np.dot(outward, cam_xy - mid) <= 0:
                    continue  # back face
            shade = {"top": 1.15, "front": 0.95, "rear": 0.8, "left": 0.65, "right": 0.65}[name]
            _draw_polys(draw, proj, proj.to_camera(fxy, fz)[None], _shade(base, shade))
            if name == "rear":
                _draw_brake_lights(draw, proj, fxy, agent.braking)
    return np.asarray(image)


def _draw_brake_lights(draw, proj: _Projector, rear_xy: np.ndarray, braking: bool) -> None:
    a, b = rear_xy[0], rear_xy[1]
    color = BRAKE_ON if braking else BRAKE_OFF
    for t0, t1 in ((0.02, 0.25), (0.75, 0.98)):
        p0, p1 = a + t0 * (b - a), a + t1 * (b - a)
        quad = np.array([p0, p1, p1, p0])
        z = np.array([0.6, 0.6, 0.95, 0.95])
        _draw_polys(draw, proj, proj.to_camera(quad, z)[None], color)
