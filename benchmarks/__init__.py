"""Benchmarks of docs/benchmarks.md: the run list (:mod:`benchmarks.runs`), the command that
trains and evaluates what is missing (:mod:`benchmarks.make`), and the generators of its
tables (:mod:`benchmarks.tables`) and figures (:mod:`benchmarks.figures`)."""
