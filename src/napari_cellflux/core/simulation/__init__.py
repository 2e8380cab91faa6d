"""A model at work: load weights, check inputs, integrate trajectories, novelty."""
