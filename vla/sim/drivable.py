"""The drivable area of a road: the union of its lane strips."""

from __future__ import annotations

import numpy as np

from vla.scoring import project_to_polyline

OFF_LANES_MARGIN_M = 0.5


def off_lanes(xy: np.ndarray, lanes, margin_m: float = OFF_LANES_MARGIN_M) -> bool:
    """True if the point lies outside every lane strip (centreline ± width / 2 + margin).

    The drivable area is the union of the lane strips (as in :mod:`vla.scoring`), not
    highway-env's ``on_road``, which asks only the lane its heading-weighted search picks.
    """
    point = np.asarray(xy, float)[None, :2]
    for lane in lanes:
        dist, _ = project_to_polyline(point, lane.centerline)
        if dist[0] <= lane.width / 2 + margin_m:
            return False
    return True
