"""A snapshot of the world at one instant, in the right-handed world frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRAKING_ACCEL = -1.0  # m/s²: brake lights on below this acceleration


@dataclass
class AgentBox:
    agent_id: int
    x: float
    y: float
    yaw: float
    length: float
    width: float
    braking: bool
    kind: str = "car"


@dataclass
class RoadGeometry:
    """Ground geometry prepared once per episode from the lane geometry.

    ``strips`` are lane surfaces and continuous lines as pairs of edge polylines; at
    render time each is cut to the part near the camera and drawn as one polygon.
    ``dashes`` are the painted dashes of striped lines, one quad each.
    """

    surface_strips: list[tuple[np.ndarray, np.ndarray]]
    line_strips: list[tuple[np.ndarray, np.ndarray]]
    dashes: np.ndarray  # (M, 4, 2)

    @classmethod
    def from_lanes(cls, lanes, dash_m: float = 3.0, marking_width: float = 0.15) -> RoadGeometry:
        surfaces, lines, dashes = [], [], []
        for lane in lanes:
            surfaces.append(lane.edges)
            for edge, kind in zip(lane.edges, lane.edge_types, strict=True):
                if kind == "none" or len(edge) < 2:
                    continue
                seg = np.diff(edge, axis=0)
                length = np.linalg.norm(seg, axis=1)
                unit = np.maximum(length, 1e-9)[:, None]
                normal = np.stack([-seg[:, 1], seg[:, 0]], axis=1) / unit
                normal = np.vstack([normal, normal[-1:]]) * marking_width / 2
                if kind == "continuous":
                    lines.append((edge - normal, edge + normal))
                    continue
                along = np.concatenate([[0.0], np.cumsum(length)])
                for i in range(len(edge) - 1):
                    if length[i] > 1e-6 and int(along[i] // dash_m) % 2 == 0:
                        dashes.append([edge[i] - normal[i], edge[i + 1] - normal[i],
                                       edge[i + 1] + normal[i], edge[i] + normal[i]])
        return cls(surfaces, lines, np.array(dashes, float).reshape(-1, 4, 2))

    def polygons_near(self, xy: np.ndarray, radius: float):
        """(surface polygons, line polygons, dash quads) within ``radius`` of ``xy``."""

        def cut(strips):
            out = []
            for e0, e1 in strips:
                near = np.flatnonzero(np.linalg.norm(e0 - xy, axis=1) < radius)
                if len(near) < 2:
                    continue
                # split into contiguous runs (a curved lane can leave and re-enter the radius)
                runs = np.split(near, np.flatnonzero(np.diff(near) > 1) + 1)
                for run in runs:
                    if len(run) >= 2:
                        out.append(np.vstack([e0[run], e1[run][::-1]]))
            return out

        dashes = self.dashes
        if len(dashes):
            dashes = dashes[np.linalg.norm(dashes[:, 0] - xy, axis=1) < radius]
        return cut(self.surface_strips), cut(self.line_strips), dashes
