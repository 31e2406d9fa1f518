"""Trajectory tokenizers: the codecs that turn a future trajectory into discrete tokens.

See ``codecs/`` for the algorithms, ``registry`` for names and loading, ``bench`` for the
measurements and ``synthetic`` for the stand-in data generator.
"""

from vla.trajectory.codecs import TrajectoryCodec
from vla.trajectory.registry import CODECS, default_codec, load_codec, make_codec
from vla.trajectory.types import EgoState, TrajectorySpec

__all__ = ["CODECS", "EgoState", "TrajectoryCodec", "TrajectorySpec", "default_codec",
           "load_codec", "make_codec"]
