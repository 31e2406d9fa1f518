"""Data recipes (package data: vla.assets.data_recipes)."""
