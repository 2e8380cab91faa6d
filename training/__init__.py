"""Training for napari-cellflux: ``python -m training.run`` (run from the repository root).

Modules: :mod:`~training.config` (the frozen TrainConfig), :mod:`~training.data` (crops and
IMPA readers, same-plate pairing, lazy memory-mapped reading), :mod:`~training.distributed`
(torchrun/DDP environment), :mod:`~training.loop`, :mod:`~training.ema`,
:mod:`~training.checkpoint`. Imports stay light here; torch loads when training starts.
"""
