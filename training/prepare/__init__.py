"""``python -m training.prepare``: a screen's field-of-view TIFFs and plate map -> crops dataset.

Kept light: the command's modules are imported by :mod:`.cli` when it runs.
"""
