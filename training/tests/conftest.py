"""Fixtures of the training tests (shared with the evaluation tests: :mod:`.helpers`)."""

from training.tests.helpers import cache_dir, one_thread, syn_dir, tiny_model  # noqa: F401 (fixtures)
