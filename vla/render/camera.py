"""A pinhole rasteriser: camera images from ground truth (road, markings, vehicle boxes).

Each camera sits on the ego vehicle (``forward_m`` ahead of its centre, ``height_m``
up, turned by ``yaw_deg``), level with the ground. ``horizon_row`` places the horizon: the
principal point sits that fraction of the image height from the top, so a level camera sees
the horizon on that row (0.5: the centre; smaller values trade sky for near road, as a
camera pitched down would, without tilting the image). The world is drawn back to front with
PIL polygons (painter's algorithm): sky and ground, road surface, lane markings, then
vehicles as shaded 3-D boxes from the farthest to the nearest, with brake lights on the
rear face that glow when the vehicle decelerates harder than 1 m/s². Polygons are clipped
at a near plane; those wholly outside the image are skipped (the picture is the same).
Simplifications: flat ground, no lighting model beyond fixed face shades, no occlusion
within a box other than back-face culling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
OFF_IMAGE_MARGIN = 2.0  # px: a polygon whose vertices all lie this far beyond one image edge
VEHICLE_HEIGHT_M = {"car": 1.6}  # box height by kind; other kinds (trucks are not simulated)
OTHER_HEIGHT_M = 1.4
FACE_SHADE = {"top": 1.15, "front": 0.95, "rear": 0.8, "left": 0.65, "right": 0.65}


@dataclass(frozen=True)
class CameraSpec:
    """One level pinhole camera on the ego vehicle; ``hfov_deg`` is the horizontal field of
    view (square pixels: the vertical one follows from the image's aspect) and
    ``horizon_row`` the fraction of the image height, from the top, at which the horizon
    appears."""

    name: str
    yaw_deg: float
    hfov_deg: float = 90.0
    width: int = 160
    height: int = 96
    height_m: float = 1.5
    forward_m: float = 1.5
    horizon_row: float = 0.5

    def __post_init__(self) -> None:
        if not 10 <= self.hfov_deg <= 170:
            raise ValueError(f"camera {self.name}: hfov_deg must be in [10, 170], "
                             f"got {self.hfov_deg}")
        if self.width < 16 or self.height < 16:
            raise ValueError(f"camera {self.name}: image must be at least 16x16 pixels, "
                             f"got {self.width}x{self.height}")
        if not 0.0 <= self.horizon_row <= 0.9:
            raise ValueError(f"camera {self.name}: horizon_row must be in [0, 0.9] (fraction "
                             f"of the image height from the top), got {self.horizon_row}")

    @property
    def focal(self) -> float:
        """Focal length in pixels (horizontal and vertical: square pixels)."""
        return self.width / 2 / np.tan(np.radians(self.hfov_deg) / 2)

    @property
    def principal_point(self) -> tuple[float, float]:
        """(column, row) of the optical axis: the horizontal centre, ``horizon_row`` down."""
        return self.width / 2, self.horizon_row * self.height


# Alpamayo-R1's front pair (a 120° wide and a 30° telephoto camera) beside the 90° set.
CAMERA_PRESETS = {
    "front_left": CameraSpec("front_left", 60.0),
    "front": CameraSpec("front", 0.0),
    "front_wide": CameraSpec("front_wide", 0.0, hfov_deg=120.0),
    "front_tele": CameraSpec("front_tele", 0.0, hfov_deg=30.0),
    "front_right": CameraSpec("front_right", -60.0),
    "rear": CameraSpec("rear", 180.0),
}


def camera_specs(names, width: int = 160, height: int = 96,
                 horizon_row: float = 0.5) -> list[CameraSpec]:
    """Camera specs for ``names`` (from :data:`CAMERA_PRESETS`) at one image size and
    horizon row."""
    specs = []
    for name in names:
        if name not in CAMERA_PRESETS:
            raise ValueError(f"unknown camera {name!r}; known cameras: {sorted(CAMERA_PRESETS)}")
        specs.append(replace(CAMERA_PRESETS[name], width=width, height=height,
                             horizon_row=horizon_row))
    return specs


class _Projector:
    def __init__(self, cam: CameraSpec, ego_x: float, ego_y: float, ego_yaw: float):
        yaw = ego_yaw + np.radians(cam.yaw_deg)
        self.c, self.s = np.cos(yaw), np.sin(yaw)
        self.origin = np.array([ego_x + cam.forward_m * np.cos(ego_yaw),
                                ego_y + cam.forward_m * np.sin(ego_yaw)])
        self.h = cam.height_m
        self.f = cam.focal
        self.cx, self.cy = cam.principal_point
        self.width, self.height = cam.width, cam.height

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

    def off_image(self, px: np.ndarray) -> np.ndarray:
        """For pixel polygons (..., K, 2): True where all vertices lie beyond one image edge
        (the polygon, inside their hull, draws no pixel)."""
        m = OFF_IMAGE_MARGIN
        x, y = px[..., 0], px[..., 1]
        return ((x.max(-1) < -m) | (x.min(-1) > self.width + m)
                | (y.max(-1) < -m) | (y.min(-1) > self.height + m))


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (K, 3) against forward >= NEAR:
    each vertex in front is kept, and each edge crossing the plane adds its crossing point
    after the edge's first vertex."""
    a, b = poly, np.roll(poly, -1, axis=0)
    a_in, b_in = a[:, 0] >= NEAR, b[:, 0] >= NEAR
    cross = a_in != b_in
    ac, bc = a[cross], b[cross]
    t = (NEAR - ac[:, 0]) / (bc[:, 0] - ac[:, 0])
    points = np.concatenate([a[a_in], ac + t[:, None] * (bc - ac)])
    slots = np.concatenate([2 * np.flatnonzero(a_in), 2 * np.flatnonzero(cross) + 1])
    return points[np.argsort(slots)]


def _draw_polys(draw: ImageDraw.ImageDraw, proj: _Projector, polys_cam, color) -> None:
    """Draw camera-frame polygons (each (K, 3)) in one colour, clipped at the near plane.

    One colour makes the drawing order irrelevant, so the polygons wholly in front of the
    near plane (a stacked (M, K, 3) array is projected at once) and those clipped are drawn
    in two passes."""
    if isinstance(polys_cam, np.ndarray) and polys_cam.ndim == 3:
        if not len(polys_cam):
            return
        depth = polys_cam[..., 0]
        nearest, farthest = depth.min(-1), depth.max(-1)
        whole = polys_cam[(nearest >= NEAR) & (nearest < FAR)]
        if len(whole):
            px = proj.pixels(whole)
            for poly in px[~proj.off_image(px)]:
                draw.polygon(poly.ravel().tolist(), fill=color)
        polys_cam = polys_cam[(nearest < NEAR) & (farthest > NEAR)]
    for poly in polys_cam:
        depth = poly[:, 0]
        if depth.max() <= NEAR or depth.min() >= FAR:
            continue
        if depth.min() < NEAR:
            poly = _clip_near(poly)
            if len(poly) < 3:
                continue
        px = proj.pixels(poly)
        if not proj.off_image(px):
            draw.polygon(px.ravel().tolist(), fill=color)


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


def _box_off_image(proj: _Projector, corners_xy: np.ndarray, height: float) -> bool:
    """True when a box (ground corners (4, 2), ``height`` tall) is wholly in front of the
    near plane and its eight corners all project beyond one image edge: nothing of it (brake
    lights included, inside the box) reaches the image."""
    corners = np.concatenate([proj.to_camera(corners_xy, 0.0), proj.to_camera(corners_xy, height)])
    if corners[:, 0].min() < NEAR:
        return False
    return bool(proj.off_image(proj.pixels(corners)))


def _shade(color, k: float):
    return tuple(int(min(255, max(0, v * k))) for v in color)


def render_cameras(cams: list[CameraSpec], ego: AgentBox, agents: list[AgentBox],
                   road: RoadGeometry) -> list[np.ndarray]:
    """The images of ``cams`` on ``ego`` at one instant, as :func:`render_camera` draws
    them; the road near a camera position is looked up once for the cameras sharing it."""
    road_near: dict = {}
    return [render_camera(cam, ego, agents, road, road_near) for cam in cams]


def render_camera(cam: CameraSpec, ego: AgentBox, agents: list[AgentBox],
                  road: RoadGeometry, road_near: dict | None = None) -> np.ndarray:
    """One camera image (H, W, 3) uint8 seen from ``ego``; ``agents`` excludes the ego.

    ``road_near`` (optional) keeps the road polygons near each camera position between
    calls for one ego at one instant."""
    image = Image.new("RGB", (cam.width, cam.height), GRASS)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, cam.width, int(cam.horizon_row * cam.height)], fill=SKY)
    proj = _Projector(cam, ego.x, ego.y, ego.yaw)
    road_near = {} if road_near is None else road_near
    key = tuple(proj.origin)
    if key not in road_near:
        road_near[key] = road.polygons_near(proj.origin, FAR)
    surfaces, lines, dashes = road_near[key]
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
        height = VEHICLE_HEIGHT_M.get(agent.kind, OTHER_HEIGHT_M)
        xy, faces = _box_faces(agent, height)
        if _box_off_image(proj, xy, height):
            continue
        for name, fxy, fz in faces:
            if name != "top":
                mid = fxy[:2].mean(axis=0)
                outward = mid - np.array([agent.x, agent.y])
                if np.dot(outward, cam_xy - mid) <= 0:
                    continue  # back face
            _draw_polys(draw, proj, [proj.to_camera(fxy, fz)], _shade(base, FACE_SHADE[name]))
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
        _draw_polys(draw, proj, [proj.to_camera(quad, z)], color)
