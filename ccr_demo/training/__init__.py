"""Training: configs, datasets and samplers, losses and objectives, checkpoints, the loop."""
