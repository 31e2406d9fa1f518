"""Converters from public driving-log formats (nuScenes, PhysicalAI-AV) into vla data sets."""
