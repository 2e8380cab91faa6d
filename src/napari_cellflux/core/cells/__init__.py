"""Cell pixels: image axes and intensities, nuclei, crops, morphology and read-outs."""
