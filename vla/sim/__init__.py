"""Driving scenes from highway-env: scenario recipes, an instrumented driver, episode logs, and
a closed-loop environment that follows plans."""
