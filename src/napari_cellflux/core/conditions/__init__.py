"""What a perturbation is to the model: compound and gene encoders, the dose axis."""
