"""Serving configs (package data: vla.assets.serve)."""
