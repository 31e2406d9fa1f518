"""Driving scenes from highway-env: scenario recipes, an instrumented driver, episode logs."""
