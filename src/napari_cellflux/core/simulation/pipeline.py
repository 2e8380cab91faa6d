"""The work done off the GUI thread: detect cells, crop, simulate, tile, measure.

:func:`simulate_batches` is a generator of small event objects that the widget runs in a
napari ``thread_worker``; the main thread only copies each frame into preallocated layer
data. Cancel (``worker.quit()``) stops it at the next yield. Errors never escape: they are
yielded as :class:`Failed` with a message for a napari notification, so the viewer never
shows a traceback for a wrong SMILES or a bad image.

With jump weights every batch first gets a :class:`Preview`: the end of the run's first
leg in ONE network evaluation (:func:`.integrator.preview_frame`), so a whole field shows
its answer in seconds; the trajectory's frames then fill in, and its own frame at that t
replaces the preview. A preview is never a frame: not kept, measured or exported.

The start-cell check (:func:`.cell_check.check_cells`, a morphology profile of every cell:
about a second for a whole field) comes after the previews as :class:`CellsChecked`, so it
does not delay the first look at the answer; it always arrives before the first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .settings import SimulationSettings

__all__ = [
    "Batch",
    "RunSettings",
    "CellsFound",
    "Ready",
    "Frame",
    "Preview",
    "CellsChecked",
    "Failed",
    "detect_cells",
    "simulate_batches",
    "load_model_safely",
    "MOSAIC_GAP",
    "MAX_CELLS",
]

_log = logging.getLogger(__name__)
MOSAIC_GAP = 2  # dark pixels between cells in the mosaic
#: Most cells a run takes from one field (the widget's Cells box): a whole field of a
#: typical 10-20x objective (a few hundred nuclei) fits.
MAX_CELLS = 400


@dataclass
class Batch:
    """One input to simulate: a field of view (cells to detect/crop) or crops."""

    name: str
    image: np.ndarray  # (H, W, C) field or (N, H, W, C) crops, model order
    is_field: bool
    centroids: np.ndarray | None = None  # (K, 2) chosen cells; None: detect
    n_cells: int = 16
    dose_uM: float | None = None  # this input's dose (dose comparison); None: the run's
    source: str = ""  # the image it comes from, when several inputs share one (doses)
    seed: int | None = None  # this input's noise seed (samples per cell); None: the run's
    noise: float = 0.0  # start noise (network units) that makes samples differ


@dataclass(frozen=True)
class RunSettings:
    """One run of the widget: the perturbation, the :class:`.SimulationSettings` of every
    input (a :class:`Batch` may have its own dose, seed and noise), and what only the widget
    has. :meth:`as_metadata` is what layers and TIFFs keep."""

    perturbation: str
    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    paste_back: bool = False
    weights: str = ""
    cpu_threads: int = 0  # torch CPU threads for this run; 0: leave as they are

    @property
    def direction(self) -> str:
        return self.simulation.direction

    @property
    def n_frames(self) -> int:
        return self.simulation.n_frames

    def times(self) -> np.ndarray:
        return self.simulation.times()

    def as_metadata(self) -> dict[str, Any]:
        """The perturbation, every setting (:meth:`.SimulationSettings.as_record`) and the
        weights file."""
        return {
            "perturbation": self.perturbation,
            **self.simulation.as_record(),
            "weights": self.weights,
        }


@dataclass
class CellsFound:
    batch: int
    centroids: np.ndarray  # (K, 2) row, col in the field's pixels


@dataclass
class Ready:
    """Crops are cut: the widget can allocate the (T, ...) stacks."""

    crops: list[np.ndarray]  # per batch (N, h, w, C), the start frame
    mosaic_hw: list[tuple[int, int]]
    limits: np.ndarray  # (C, 2) contrast limits shared by all batches
    scales: list[np.ndarray]  # per batch (C,) intensity factors applied
    warnings: list[str] = field(default_factory=list)  # e.g. a dose far outside training
    cpu_threads: int | None = None  # torch CPU threads the run computes with (None: GPU)
    novelty: dict[str, Any] | None = None  # the perturbation vs training (core.simulation.novelty)
    #: How typical the start cells are (core.simulation.cell_check): None here; the
    #: :class:`CellsChecked` that follows the previews carries it (the state fills it in).
    cells: dict[str, Any] | None = None
    centroids: list[Any] = field(default_factory=list)  # per batch (K, 2) field px, or None


@dataclass
class Frame:
    batch: int
    index: int
    t: float
    mosaic: np.ndarray  # (Hm, Wm, C)
    crops: np.ndarray  # (N, h, w, C)
    summary: dict[str, float]
    field: np.ndarray | None = None  # (H, W, C) cells pasted back into the field


@dataclass
class Preview:
    """The end of the first leg (``index``: its frame slot, ``t``: 1 forward, 0 reverse)
    straight from the start cells in one jump (jump weights): shown at once, replaced by
    the trajectory's own frame at ``index``; never kept, measured or exported as a frame."""

    batch: int
    index: int
    t: float
    mosaic: np.ndarray  # (Hm, Wm, C)
    crops: np.ndarray  # (N, h, w, C)
    field: np.ndarray | None = None  # (H, W, C) cells pasted back (with paste-back on)


@dataclass
class CellsChecked:
    """The start-cell check of the run (``cells``: :meth:`.cell_check.CellCheck.as_dict`,
    None when it could not be made); after the previews, before the first frame."""

    cells: dict[str, Any] | None


@dataclass
class Failed:
    message: str


@dataclass
class _State:
    crops: list[np.ndarray] = field(default_factory=list)
    centroids: list[np.ndarray | None] = field(default_factory=list)


def load_model_safely(path: str | None, device: str) -> Any:
    """``load_model`` that returns :class:`Failed` instead of raising (shown by the widget).

    Never the exception itself: napari's thread worker re-raises a returned exception, so
    the widget's handler would never see it (and, outside napari's event loop, the process
    aborts).
    """
    try:
        from .load import load_model

        return load_model(path or None, device=device)
    except Exception as exc:  # a worker must not raise: napari would show a traceback
        if isinstance(exc, ValueError):
            _log.debug("loading weights failed", exc_info=True)
            return Failed(str(exc))
        _log.exception("loading weights failed")
        return Failed(f"{type(exc).__name__}: {exc}. See the log for details.")


def _detect(
    batch: Batch, dna_index: int, n_cells: int, crop_size: int, seed: int = 0
) -> np.ndarray:
    """Centres of ``n_cells`` representative cells of a field, in reading order.

    A seeded random sample (not the largest nuclei, which over-represent clumps), preferring
    cells whose crop lies inside the field, and ignoring specks much smaller than a nucleus.
    """
    from ..cells.nuclei import detect_nuclei

    result = detect_nuclei(batch.image[..., dna_index])
    if result.count == 0:
        raise ValueError(
            f"No nuclei were found in the DNA channel of '{batch.name}'. Check the channel "
            "order (which image channel is DNA) and that the image shows cells."
        )
    cen, areas = result.centroids, result.areas
    h, w = batch.image.shape[:2]
    half = crop_size / 2
    inside = (
        (cen[:, 0] >= half)
        & (cen[:, 0] <= h - half)
        & (cen[:, 1] >= half)
        & (cen[:, 1] <= w - half)
    )
    plausible = areas >= 0.3 * np.median(areas)
    pool = np.flatnonzero(inside & plausible)
    if pool.size < n_cells:
        pool = np.flatnonzero(plausible)
    rng = np.random.default_rng(seed)
    pick = rng.choice(pool, size=min(n_cells, pool.size), replace=False)
    chosen = cen[pick]
    return chosen[np.lexsort((chosen[:, 1], chosen[:, 0]))]


def detect_cells(
    batches: Sequence[Batch], dna_index: int, crop_size: int, seed: int = 0
) -> Iterator[CellsFound | Failed]:
    """Detect nuclei in every field (worker generator for the 'Detect cells' button)."""
    try:
        for b, batch in enumerate(batches):
            if batch.is_field:
                yield CellsFound(b, _detect(batch, dna_index, batch.n_cells, crop_size, seed))
    except Exception as exc:
        yield Failed(_message(exc))


def _message(exc: Exception) -> str:
    if isinstance(exc, ValueError):
        return str(exc)
    _log.exception("napari-cellflux simulation failed")
    return f"Simulation failed ({type(exc).__name__}: {exc}). See the log for details."


def _plan(model: Any, crops: np.ndarray, s: RunSettings, factors: np.ndarray, b: Batch) -> Any:
    """The model's checked plan of one input (raises ValueError with a hint).

    ``make_plan`` rather than ``model.plan``: its warnings travel in :class:`Ready` (shown
    once by the widget, kept in layer metadata), not also as Python warnings, which
    napari's worker would relay as a second notification.
    """
    from .run_plan import make_plan

    run = s.simulation
    settings = run.replace(
        seed=run.seed if b.seed is None else b.seed,
        noise=b.noise,
        dose_uM=run.dose_uM if b.dose_uM is None else b.dose_uM,
        intensity_factors=factors,
    )
    return make_plan(model.served, crops, model.encode(s.perturbation), settings)


def _use_cpu_threads(model: Any, threads: int) -> int | None:
    """Set torch's CPU thread count for a run on the CPU, in the thread that computes (the
    run owns the setting rather than whoever starts it); returns the count in use, None off
    the CPU."""
    import torch

    if not str(model.device).startswith("cpu"):
        return None
    if threads > 0:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def simulate_batches(
    model: Any, batches: Sequence[Batch], settings: RunSettings, dna_index: int | None
) -> Iterator[Any]:
    """Simulate the same perturbation on every batch, frame by frame, round robin.

    Yields :class:`CellsFound` (fields whose cells were detected here), one :class:`Ready`,
    with jump weights one :class:`Preview` per batch (one network evaluation each), one
    :class:`CellsChecked`, then ``n_frames * len(batches)`` :class:`Frame` events; or one
    :class:`Failed` instead of whatever is left.
    """
    from ..cells.crops import crop_cells, mosaic, paste_back
    from ..cells.images import channel_limits
    from ..cells.readout import ReadoutSeries

    try:
        threads = _use_cpu_threads(model, settings.cpu_threads)
        state = _State()
        found: dict[int, np.ndarray] = {}  # one detection per image (a dose comparison)
        for b, batch in enumerate(batches):
            if batch.is_field:
                cen = batch.centroids
                if (cen is None or len(cen) == 0) and id(batch.image) in found:
                    cen = found[id(batch.image)]
                elif cen is None or len(cen) == 0:
                    cen = _detect(
                        batch,
                        dna_index if dna_index is not None else 0,
                        batch.n_cells,
                        model.crop_size,
                        settings.simulation.seed or 0,
                    )
                    found[id(batch.image)] = cen
                    yield CellsFound(b, cen)
                crops = crop_cells(batch.image, cen, model.crop_size)
            else:
                cen, crops = None, batch.image
            state.crops.append(np.asarray(crops))
            state.centroids.append(cen)
        # One factor and one set of contrast limits for all batches: rescaling each batch
        # on its own would hide exactly the batch differences a comparison should show.
        # The model applies the factors (the same code as the Python API's default).
        pixels = np.concatenate([c.reshape(-1, c.shape[-1]) for c in state.crops])
        scale = model.intensity_factors(pixels)
        scales = [scale for _ in state.crops]
        plans = [
            _plan(model, c, settings, scale, b) for c, b in zip(state.crops, batches, strict=True)
        ]
        limits = channel_limits(pixels[None])  # (1, P, C): a 2-D array is one channel
        mosaics = [mosaic(c[:, :, :, :1], gap=MOSAIC_GAP).shape[:2] for c in state.crops]
        notes = list(dict.fromkeys(w for plan in plans for w in plan.warnings))
        from .novelty import check_start_cells, novelty_record

        yield Ready(
            state.crops,
            mosaics,
            limits,
            scales,
            notes,
            threads,
            novelty=novelty_record(model, settings.perturbation),
            centroids=state.centroids,
        )

        def pasted(b: int, frame: np.ndarray) -> np.ndarray | None:
            if settings.paste_back and batches[b].is_field:
                return paste_back(batches[b].image, frame, state.centroids[b])
            return None

        if model.card.config.jump:
            from .integrator import preview_frame

            for b, plan in enumerate(plans):
                t, frame = preview_frame(model.served, plan)
                yield Preview(
                    b,
                    settings.simulation.steps,  # the first leg's last frame
                    float(t),
                    mosaic(frame, gap=MOSAIC_GAP),
                    frame,
                    pasted(b, frame),
                )
        yield CellsChecked(check_start_cells(model, state.crops, scale))
        channels = model.channels
        series = [ReadoutSeries(channels, dna_index) for _ in batches]
        gens = [model.run(plan) for plan in plans]
        for index in range(settings.n_frames):
            for b, gen in enumerate(gens):
                t, frame = next(gen)
                summary = series[b].add(t, frame)
                yield Frame(
                    b,
                    index,
                    float(t),
                    mosaic(frame, gap=MOSAIC_GAP),
                    frame,
                    summary,
                    pasted(b, frame),
                )
    except Exception as exc:
        yield Failed(_message(exc))
