"""Evaluation of napari-cellflux models: how close simulated cells are to real treated cells.

``python -m evaluation`` scores a model against held-out real crops with baselines
(:mod:`evaluation.evaluate`, :mod:`evaluation.scoring`, :mod:`evaluation.baselines`,
:mod:`evaluation.metrics`); ``python -m evaluation.reversibility`` measures the forward then
reverse round trip; ``python -m evaluation.speed`` the speed of the interactive path.
Installed with the plugin, like ``python -m training.run``.
"""
