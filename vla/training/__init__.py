"""Supervised training stages (under ``accelerate launch``) and their validation."""
