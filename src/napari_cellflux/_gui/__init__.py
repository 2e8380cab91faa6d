"""The napari glue: dock widget, layers, read-out plot, settings, sample data and writer.

Everything here may import napari and Qt (through qtpy); the numerics it calls live in
:mod:`napari_cellflux.core`, which never imports this package. The npe2 manifest
(``napari.yaml``) points at :mod:`.widget`, :mod:`.sample_data` and :mod:`.writer`.
"""
