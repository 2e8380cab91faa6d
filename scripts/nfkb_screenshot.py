#!/usr/bin/env python
"""The forward run of ``python -m evaluation.nfkb`` in the napari widget, as a screenshot.

Opens the A12 (unstimulated) BBBC014 field as two layers (``A12 [NF-kB]``, ``A12 [DNA]``),
loads the model the evaluation trained (``WORK/model/model.safetensors``) into the CellFlux
simulator, picks TNF-alpha and runs ``--cells`` cells forward. The picture goes into the work
folder, outside the repository (these real cells are not ours to publish). Needs a display::

    xvfb-run -a python scripts/nfkb_screenshot.py --fields ../shared/data/fields/bbbc014_nfkb \\
        --work WORK [--cells 16] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # evaluation, from a checkout


def screenshot(fields: Path, work: Path, n_cells: int, steps: int) -> Path:
    os.environ["NAPARI_CONFIG"] = str(Path(tempfile.mkdtemp()) / "settings.yaml")
    import napari
    from make_screenshots import wait_until  # the same script folder (sys.path[0])
    from qtpy.QtWidgets import QApplication

    from evaluation.nfkb import STIMULUS, read_field
    from evaluation.nfkb_measures import CHANNELS

    app = QApplication.instance() or QApplication([])

    def wait(condition, timeout=900.0):
        wait_until(app, condition, timeout)

    viewer = napari.Viewer(title="napari-cellflux: BBBC014 A12 under TNF-alpha", show=True)
    viewer.window.resize(1600, 1100)
    field = read_field(fields, "A12")
    for c, name in enumerate(CHANNELS):  # "A12 [NF-kB]", "A12 [DNA]": one source
        viewer.add_image(
            field[..., c],
            name=f"A12 [{name}]",
            blending="additive",
            colormap="green" if name == "NF-kB" else "blue",
        )
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    mp = widget.model_panel
    wait(lambda: widget.model is not None or "Could not" in mp.info.value, 120)
    mp.weights.value = str(work / "model" / "model.safetensors")
    widget.model = None
    widget.load_weights()
    wait(lambda: widget.model is not None, 120)
    viewer.window.resize(1600, 1100)
    ip, pp, sp = widget.input_panel, widget.perturbation_panel, widget.sampler_panel
    ip.image.value = next(s for s in ip.image.choices if s.name == "A12")
    pp.known.value = STIMULUS
    sp.steps.value = steps
    ip.n_cells.value = n_cells
    widget.run()
    wait(lambda: not widget.running)
    axis = viewer.dims.ndim - 3
    viewer.dims.set_current_step(axis, viewer.dims.nsteps[axis] - 1)
    widget.scroll_to(widget.readout_box)
    wait(lambda: True)
    out = work / "screenshot_forward.png"
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print("wrote", out, "-", widget.status.value)
    viewer.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fields", type=Path, required=True, help="the BBBC014 fields folder")
    p.add_argument("--work", type=Path, required=True, help="the evaluation's work folder")
    p.add_argument("--cells", type=int, default=16, help="cells in the run (16)")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (widget default 20)")
    args = p.parse_args(argv)
    if not (args.work / "model" / "model.safetensors").is_file():
        p.error(f"{args.work} holds no trained model: run `python -m evaluation.nfkb` first")
    screenshot(args.fields, args.work.resolve(), args.cells, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
