"""Trajectory codecs: waypoint bins, unicycle controls, k-means segments, DCT + BPE."""

from vla.trajectory.codecs.base import CodecConfig, TrajectoryCodec
from vla.trajectory.codecs.dct_bpe import DctBpeCodec, DctBpeConfig
from vla.trajectory.codecs.kmeans import KMeansSegmentCodec, KMeansSegmentConfig
from vla.trajectory.codecs.unicycle import UnicycleCodec, UnicycleConfig
from vla.trajectory.codecs.waypoint import WaypointCodec, WaypointConfig

__all__ = [
    "CodecConfig", "TrajectoryCodec", "DctBpeCodec", "DctBpeConfig", "KMeansSegmentCodec",
    "KMeansSegmentConfig", "UnicycleCodec", "UnicycleConfig", "WaypointCodec", "WaypointConfig",
]
