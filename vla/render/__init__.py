"""Camera-like and top-down images rasterised from the simulator's ground truth."""
