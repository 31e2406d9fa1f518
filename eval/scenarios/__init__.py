"""Closed-loop scenario sets (package data: vla.assets.scenarios)."""
