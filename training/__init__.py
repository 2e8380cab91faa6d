"""Training for napari-cellflux: ``python -m training.run`` (from any folder once installed).

Modules: :mod:`~training.config` (the frozen TrainConfig), :mod:`~training.readers` (crops and
IMPA layouts, read lazily / memory-mapped), :mod:`~training.data` (hold-outs, same-plate
pairing, conditions, batches), :mod:`~training.distributed`
(torchrun/DDP environment), :mod:`~training.loop`, :mod:`~training.ema`,
:mod:`~training.checkpoint`. Imports stay light here; torch loads when training starts.
"""
