"""Data sets of driving scenes: labels, metric cache, building, checking, showing."""
