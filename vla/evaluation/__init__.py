"""Evaluation: open loop on logged scenes (closed loop to come)."""
