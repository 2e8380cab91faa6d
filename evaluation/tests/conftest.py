"""Fixtures of the evaluation tests: the training tests' synthetic datasets and CLI runner."""

from training.tests.helpers import cache_dir, one_thread, syn_dir, tiny_model  # noqa: F401 (fixtures)
