"""Evaluation: open loop on logged scenes, closed loop in the simulator, the driving metrics and
the closed-loop scenario sets."""
