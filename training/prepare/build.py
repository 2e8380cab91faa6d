"""The run: fields -> parts (in parallel, resumable) -> one crops dataset + QC report.

Every field is cut in a worker process and saved as its own part file under
``OUT/.prepare-work/parts`` (named by the field's files and the settings), so an interrupted
run resumes by skipping the parts already there, and the main process never holds more than
one field's crops. Once all parts exist they are streamed, in plate / well / site order, into
``crops.npz`` and ``metadata.csv`` by the format's owner
(:class:`napari_cellflux.core.formats.crops_dataset.CropsWriter`); an existing dataset is only
replaced when the new one is complete. ``prepare.json`` records the inputs' fingerprint: the
same command on the same inputs finds it and does nothing.

The worker processes die with the command (:func:`_die_with_parent`): killed with ``kill -9``,
it leaves no orphan cutting fields into a folder whose lock (shared with its forked workers)
would then stay held.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .discover import Site
from .field import FieldSettings, part_name, process_field, read_part_qc
from .report import write_report
from .screen import Screen
from .wells import PrepareError

__all__ = ["MANIFEST", "WORK_DIR", "Outcome", "build_dataset", "default_workers"]

MANIFEST = "prepare.json"
WORK_DIR = ".prepare-work"
_FORMAT_VERSION = 1


@dataclass
class Outcome:
    """What a run did: ``status`` is "written" or "up to date"."""

    status: str
    out: Path
    n_crops: int
    n_fields: int
    processed: int
    seconds: float
    summary: str


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when ``parent`` (the command) dies, however it dies.

    On Linux the kernel sends SIGTERM at the parent's death (``PR_SET_PDEATHSIG``); elsewhere
    a thread watches for the worker being handed to another parent.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        else:
            if os.getppid() != parent:  # it died before the request was in place
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _fingerprint(
    screen: Screen, parts: list[str], channels: list[str], extra: dict[str, Any]
) -> str:
    h = hashlib.sha1(
        json.dumps(
            {"version": _FORMAT_VERSION, "channels": channels, **extra},
            sort_keys=True,
            default=str,
        ).encode()
    )
    h.update(screen.conditions.to_csv(index=False).encode())
    for name in parts:
        h.update(name.encode())
    return h.hexdigest()


def _check_output(out: Path, fingerprint: str, resume: bool, overwrite: bool) -> dict | None:
    """The stored manifest when ``out`` already holds this very dataset; raise if it holds
    another one (or an interrupted run) and the user did not say what to do with it."""
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {out} is a file; give a folder for the dataset")
    manifest = out / MANIFEST
    stored = None
    if manifest.is_file():
        try:
            stored = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
    complete = (out / "crops.npz").is_file() and (out / "metadata.csv").is_file()
    if stored and complete and stored.get("fingerprint") == fingerprint:
        return stored
    if ((out / "crops.npz").exists() or (out / "metadata.csv").exists()) and not overwrite:
        what = (
            f"a dataset prepared from other inputs or settings ({stored.get('n_crops')} "
            f"crops, {stored.get('created', '')})"
            if stored
            else "a crops dataset"
        )
        raise PrepareError(
            f"{out} already holds {what}. Choose another --out, or pass "
            "--overwrite to replace it (it is kept until the new one is "
            "complete)"
        )
    work = out / WORK_DIR
    if work.is_dir():
        if overwrite and not resume:
            shutil.rmtree(work)
        elif not resume:
            done = len(list((work / "parts").glob("*.npz")))
            raise PrepareError(
                f"{out} holds an interrupted run ({done} field(s) done in "
                f"{work}). Run the same command with --resume to continue it, "
                "or with --overwrite to start again"
            )
    return None


def _process(
    tasks: list[tuple[Site, Path]],
    settings: FieldSettings,
    workers: int,
    progress: bool,
    already: int,
    total: int,
    scheduler: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Process the fields, yielding each QC record as it finishes (any order): in this
    process, in ``workers`` local processes, or on the Dask cluster at ``scheduler``."""
    from tqdm import tqdm

    from .cluster import cluster_pool, local_pool

    bar = tqdm(
        total=total,
        initial=already,
        unit="field",
        disable=not progress,
        file=sys.stderr,
        mininterval=1.0,
        smoothing=0.05,
        dynamic_ncols=True,
    )
    cells = 0

    def tick(qc: dict[str, Any]) -> dict[str, Any]:
        nonlocal cells
        cells += qc["kept"]
        bar.update(1)
        bar.set_postfix(cells=cells, refresh=False)
        return qc

    try:
        if workers <= 1 and scheduler is None:
            for site, part in tasks:
                yield tick(process_field(site, settings, part))
            return
        engine = cluster_pool(scheduler) if scheduler else local_pool(workers, _die_with_parent)
        with engine as (pool, slots):
            pending: set[Future] = set()
            queue = iter(tasks)
            try:
                while True:
                    # A bounded window of submitted fields keeps memory flat for any screen.
                    for site, part in queue:
                        pending.add(pool.submit(process_field, site, settings, part))
                        if len(pending) >= 4 * slots:
                            break
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield tick(future.result())
            except BaseException:
                for future in pending:
                    future.cancel()
                pool.shutdown(wait=False)
                raise
    finally:
        bar.close()


def _field_rows(
    screen: Screen, qcs: dict[str, dict[str, Any]], focus_ratio: float
) -> pd.DataFrame:
    """One row per site: map columns, QC counts, and the out-of-focus decision (a field is
    out of focus when its sharpness is below ``focus_ratio`` x its plate's median)."""
    recs = [qcs[s.key] for s in screen.sites]
    table = pd.DataFrame(
        {
            "plate": [s.plate for s in screen.sites],
            "well": [s.well for s in screen.sites],
            "site": [s.site for s in screen.sites],
            "perturbation": screen.conditions["perturbation"].to_numpy(),
            "dose_uM": screen.conditions["dose_uM"].to_numpy(),
            "is_control": screen.conditions["is_control"].to_numpy(),
            **{
                k: [r[k] for r in recs]
                for k in (
                    "status",
                    "reason",
                    "nuclei",
                    "rejected_area",
                    "rejected_edge",
                    "kept",
                    "focus",
                    "dtype",
                )
            },
        }
    )
    ok = table["status"].eq("ok")
    median = table[ok].groupby("plate")["focus"].transform("median")
    ratio = (table.loc[ok, "focus"] / median.where(median > 0)).fillna(1.0)
    table["focus_ratio"] = ratio.round(3).reindex(table.index)
    blurred = ok & table["focus_ratio"].lt(focus_ratio)
    table.loc[blurred, "status"] = "out_of_focus"
    table.loc[blurred, "reason"] = [
        f"sharpness {r:.2f} x the plate median (< {focus_ratio:g})"
        for r in table.loc[blurred, "focus_ratio"]
    ]
    table["cells"] = np.where(table["status"].eq("ok"), table["kept"], 0)
    return table


def _source(path: str, images: Path | None) -> str:
    if images is not None:
        try:
            return Path(path).resolve().relative_to(images.resolve()).as_posix()
        except ValueError:
            pass
    return path


def _assemble(
    out: Path,
    screen: Screen,
    parts: list[Path],
    table: pd.DataFrame,
    settings: FieldSettings,
    images: Path | None,
) -> int:
    from napari_cellflux.core.formats.crops_dataset import CropsWriter

    use = table["status"].eq("ok") & table["cells"].gt(0)
    n = int(table.loc[use, "cells"].sum())
    dtypes = [np.dtype(d) for d in table.loc[use, "dtype"].unique()]
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.uint16)
    genetic = screen.conditions["gene"].ne("").any()
    shape = (settings.crop_size, settings.crop_size, settings.n_channels)
    with CropsWriter(out, n, shape, dtype) as writer:
        for i in np.flatnonzero(use):
            site, cond = screen.sites[i], screen.conditions.iloc[i]
            with np.load(parts[i], allow_pickle=False) as part:
                crops, centres, areas = part["crops"], part["centres"], part["areas"]
            k = len(crops)
            rows = {
                "plate": site.plate,
                "well": site.well,
                "site": site.site,
                "compound": cond["perturbation"],
            }
            if genetic:
                rows["gene"] = cond["gene"]
            rows.update(
                {
                    "smiles": cond["smiles"],
                    "concentration_uM": cond["dose_uM"],
                    "is_control": int(bool(cond["is_control"])),
                    "source_file": _source(
                        site.files[min(settings.nuclear_index, len(site.files) - 1)], images
                    ),
                    "centre_y": np.round(centres[:, 0], 2),
                    "centre_x": np.round(centres[:, 1], 2),
                    "nucleus_area": areas,
                }
            )
            writer.write(crops, pd.DataFrame(rows, index=range(k)))
    return n


def build_dataset(
    screen: Screen,
    channels: list[str],
    settings: FieldSettings,
    out: Path,
    *,
    images: Path | None,
    focus_ratio: float,
    min_cells: int,
    workers: int,
    resume: bool,
    overwrite: bool,
    progress: bool,
    notes: list[str],
    describe: dict[str, Any],
    log: Callable[[str], None] = print,
    intro: str = "",
    scheduler: str | None = None,
) -> Outcome:
    """Process every field of ``screen`` and write the dataset and its QC report to ``out``
    (the fields on the Dask cluster at ``scheduler``, else in ``workers`` processes)."""
    start = time.perf_counter()
    try:
        names = [part_name(site, settings) for site in screen.sites]
    except OSError as exc:
        raise PrepareError(f"an image disappeared while preparing: {exc}") from None
    fingerprint = _fingerprint(
        screen, names, channels, {"focus_ratio": focus_ratio, "min_cells": min_cells}
    )
    stored = _check_output(out, fingerprint, resume, overwrite)
    if stored is not None:
        return Outcome(
            "up to date",
            out,
            int(stored["n_crops"]),
            int(stored["n_fields"]),
            0,
            time.perf_counter() - start,
            stored.get("summary", ""),
        )
    if intro:
        log(intro)
    parts_dir = out / WORK_DIR / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts = [parts_dir / name for name in names]
    qcs: dict[str, dict[str, Any]] = {}
    todo = []
    for site, part in zip(screen.sites, parts, strict=True):
        if part.is_file():
            qcs[site.key] = read_part_qc(part)
        else:
            todo.append((site, part))
    if qcs:
        log(f"resuming: {len(qcs)} of {len(parts)} field(s) already done")
    for qc in _process(todo, settings, workers, progress, len(qcs), len(parts), scheduler):
        qcs[qc["key"]] = qc
    table = _field_rows(screen, qcs, focus_ratio)
    qc_dir = out / "qc"
    summary = write_report(
        qc_dir,
        table,
        screen.plate_format,
        screen.unmapped,
        screen.unimaged,
        notes + screen.notes,
        min_cells,
    )
    if not table["cells"].any():
        raise PrepareError(
            f"no cell was kept from {len(table)} field(s); see "
            f"{qc_dir / 'problems.csv'} and {qc_dir / 'fields.csv'} (is "
            "--nuclear-channel the DNA stain? are the fields readable?)"
        )
    n = _assemble(out, screen, parts, table, settings, images)
    manifest = {
        "fingerprint": fingerprint,
        "n_crops": n,
        "n_fields": len(parts),
        "channels": channels,
        "crop_size": settings.crop_size,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": settings.to_dict(),
        "summary": summary,
        **describe,
    }
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
    )
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    return Outcome("written", out, n, len(parts), len(todo), time.perf_counter() - start, summary)
