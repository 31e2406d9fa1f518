"""Prompt templates (package data: vla.assets.prompts)."""
