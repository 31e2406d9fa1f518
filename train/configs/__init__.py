"""Training run configs (package data: vla.assets.train_configs)."""
