"""Qt-free core of napari-cellflux: model, sampler, encoders, weights, image helpers.

Nothing under this package imports napari, qtpy or magicgui, so scripts and the training
module can use it on headless machines.
"""
