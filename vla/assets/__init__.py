"""The data files vla reads, installed as packages: prompt templates, data recipes, serving
configs, scenario sets and training run configs.

Each subpackage is a top-level folder of the checkout (``prompts/``, ``data_recipes/``,
``serve/``, ``eval/scenarios/``, ``train/configs/``) that
pyproject.toml maps here; read them through :mod:`vla.resources`.
"""
