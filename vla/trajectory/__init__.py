"""Trajectory codecs: turn a future trajectory into discrete tokens and back.

See ``codecs/`` for the algorithms, ``registry`` for names and loading, ``types`` and
``kinematics`` for the shared geometry, ``metrics`` for the round-trip errors and comfort,
``baselines`` for the kinematic priors, ``data`` for reading a built data set's trajectories
and ``synthetic`` for the stand-in trajectory generator. The lowest layer of ``vla``
(``docs/architecture.md``): it imports nothing else of ``vla``. The codec bench and the
predictability study live in :mod:`vla.analysis`.
"""

from vla.trajectory.codecs import TrajectoryCodec
from vla.trajectory.registry import CODECS, default_codec, load_codec, make_codec
from vla.trajectory.types import EgoState, TrajectorySpec

__all__ = ["CODECS", "EgoState", "TrajectoryCodec", "TrajectorySpec", "default_codec",
           "load_codec", "make_codec"]
