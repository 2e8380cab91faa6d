"""Benchmarks of docs/benchmarks.md and docs/experiments/: the run lists (what a run is:
:mod:`benchmarks.run_spec`; the lists: :mod:`benchmarks.runs` and its siblings), the command
that runs what is missing (:mod:`benchmarks.make`), and the generators of the tables
(:mod:`benchmarks.tables`) and figures (:mod:`benchmarks.figures`)."""
