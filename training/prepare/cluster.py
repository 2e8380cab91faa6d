"""Where the per-field work runs: this machine's processes, or a running Dask cluster.

``--scheduler ADDRESS`` hands every field to the workers of a ``dask.distributed`` scheduler
(one that dask-jobqueue starts on SLURM, a Kubernetes operator, or ``dask scheduler`` by
hand) instead of a local process pool. Only the per-field work moves: each task is
:func:`training.prepare.field.process_field` on one site, which writes its part file under
``--out``, so the workers must see the images and ``--out`` at the same paths (a shared file
system) and have napari-cellflux installed. A worker that dies takes its running field with
it; the scheduler gives that field to another worker, and a part is written whole or not at
all, so nothing is lost or counted twice, and the dataset is the one local processes write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

from .wells import PrepareError

__all__ = ["cluster_pool", "local_pool"]


@contextmanager
def local_pool(workers: int, initializer=None) -> Iterator[tuple[Executor, int]]:
    """(a pool of ``workers`` processes on this machine, its size)."""
    with ProcessPoolExecutor(
        max_workers=workers, initializer=initializer, initargs=(os.getpid(),)
    ) as pool:
        yield pool, workers


@contextmanager
def cluster_pool(address: str, wait_s: float = 60.0) -> Iterator[tuple[Executor, int]]:
    """(an executor on the Dask cluster at ``address``, its worker threads).

    Raises PrepareError when dask.distributed is not installed (naming the extra), when the
    scheduler cannot be reached, or when no worker joins it within ``wait_s`` seconds.
    """
    try:
        from distributed import Client
    except ImportError:
        raise PrepareError(
            "--scheduler needs dask.distributed; install it with: pip install "
            '"napari-cellflux[dask]"'
        ) from None
    try:
        client = Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PrepareError(
            f"--scheduler {address}: cannot reach a Dask scheduler there ({exc}). Start one "
            "(dask scheduler, or dask-jobqueue's cluster) and give its address, e.g. "
            "tcp://HOST:8786"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=wait_s)
        except TimeoutError:
            raise PrepareError(
                f"--scheduler {address}: no worker joined the scheduler within {wait_s:.0f} s; "
                "start workers (dask worker ADDRESS) and run the command again"
            ) from None
        threads = sum(client.nthreads().values())
        yield client.get_executor(pure=False), max(int(threads), 1)
    finally:
        client.close()
