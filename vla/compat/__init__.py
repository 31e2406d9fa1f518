"""Workarounds for the third-party stacks vla runs on (see scripts/setup.sh)."""
