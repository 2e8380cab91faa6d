"""Files on disk, one owner per format: weights, crops datasets, fields, provenance, locks."""
