"""Make the user-guide screenshots: forward, reverse, batch comparison, and the trainer.

Run under a (virtual) X server, from the repository root::

    xvfb-run -a -s "-screen 0 1920x1200x24" python scripts/make_screenshots.py
    xvfb-run -a python scripts/make_screenshots.py --weights path/to/model.safetensors
    xvfb-run -a python scripts/make_screenshots.py --only trainer
    xvfb-run -a python scripts/make_screenshots.py --only dose_curve
    xvfb-run -a python scripts/make_screenshots.py --only plate

It opens the real viewer, loads the plugin's sample data and dock widget through npe2 (as
File > Open Sample and the Plugins menu do), runs the widget, and saves PNGs into
``docs/images/``. napari's settings are redirected to a temporary folder, so the script never
changes the user's remembered weights or device.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wait_until(app, condition, timeout: float = 600.0) -> None:
    """Run the Qt event loop until ``condition()`` holds, then let the canvas draw."""
    start = time.monotonic()
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("the viewer did not finish in time")
    for _ in range(20):  # let the canvas draw the last frame
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="", help="weights file (default: bundled demo)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--only", choices=["all", "simulator", "trainer", "plate", "dose_curve"], default="all"
    )
    args = parser.parse_args(argv)

    os.environ["NAPARI_CONFIG"] = str(Path(tempfile.mkdtemp()) / "settings.yaml")
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_cellflux._gui.sample_data import SAMPLE_COMPOUND, SAMPLE_DOSE_UM

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    if args.only in ("all", "trainer"):
        trainer_screenshot(app, out)
    if args.only in ("all", "plate"):
        virtual_plate_screenshot(app, out)
    if args.only in ("all", "dose_curve"):
        dose_curve_screenshot(app, out, args)
    if args.only in ("trainer", "plate", "dose_curve"):
        return 0
    viewer = napari.Viewer(title="napari-cellflux", show=True)
    viewer.window.resize(1600, 1100)
    viewer.open_sample("napari-cellflux", "demo_set")
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    mp = widget.model_panel
    if args.weights or args.device != "auto":
        wait_until(app, lambda: widget.model is not None or "Could not" in mp.info.value)
        mp.weights.value = args.weights
        mp.device.value = args.device
        widget.model = None
        widget.load_weights()
    wait_until(app, lambda: widget.model is not None, timeout=120)
    viewer.window.resize(1600, 1100)  # again: docking the widget may have grown the window
    model = widget.model
    print(model.describe())
    if model.untrained:
        print("WARNING: untrained model: the cells will not change", file=sys.stderr)

    ip, pp, sp, cp = (
        widget.input_panel,
        widget.perturbation_panel,
        widget.sampler_panel,
        widget.compare_panel,
    )
    name = SAMPLE_COMPOUND if SAMPLE_COMPOUND in model.perturbations else model.perturbations[0]
    pp.known.value = name
    sp.steps.value = args.steps
    ip.n_cells.value = args.cells
    treated = f"{SAMPLE_COMPOUND} {SAMPLE_DOSE_UM:g}uM SynPlate1"

    def source(label: str):
        return next(s for s in ip.image.choices if s.name == label)

    def run_and_shoot(filename: str, show: list, frame: int | None = None) -> None:
        widget.run()
        wait_until(app, lambda: not widget.running)
        axis = viewer.dims.ndim - 3
        last = viewer.dims.nsteps[axis] - 1
        viewer.dims.set_current_step(axis, last if frame is None else frame)
        for part in show:  # scroll the settings to what this picture is about
            widget.scroll_to(part)
        wait_until(app, lambda: True)
        viewer.screenshot(str(out / filename), canvas_only=False, flash=False)
        print("wrote", out / filename, "-", widget.status.value)

    # 1. forward: control SynPlate1 -> treated, cells detected in the field, mosaic beside it
    ip.image.value = source("control SynPlate1")
    run_and_shoot("forward.png", [widget.perturbation_panel, widget.readout_box])

    # 2. reverse: from the treated field of the same batch back to the control state
    for layer in viewer.layers:
        layer.visible = layer.name.startswith(treated) or "reverse" in layer.name
    ip.image.value = source(treated)
    sp.direction.value = "reverse"
    run_and_shoot("reverse.png", [widget.readout_box, widget.sampler_panel])

    # 3. batch comparison: the same perturbation on the controls of two plates
    sp.direction.value = "forward"
    cp.enabled_box.value = True
    cp.batches.value = [
        s for s in cp.batches.choices if s.name in ("control SynPlate1", "control SynPlate2")
    ]
    run_and_shoot("batch_comparison.png", [widget.readout_box])  # the README shows this one

    # 4. doses side by side: the same cells at three doses, and the dose response at t = 1
    cp.enabled_box.value = False
    for layer in viewer.layers:
        layer.visible = layer.name.startswith("control SynPlate1")
    ip.image.value = source("control SynPlate1")
    dp = widget.dose_panel
    dp.enabled_box.value = True
    dp.doses.value = "0.3, 3, 30"
    run_and_shoot("doses.png", [widget.dose_panel])
    dp.enabled_box.value = False

    # 5. the dock widget alone, with an invalid SMILES marked before Run
    pp.smiles.value = "CC(=O)Oc1ccccc1C(=O"
    wait_until(app, lambda: True)
    widget.body.native.grab().save(str(out / "widget.png"))  # the whole, unscrolled form
    print("wrote", out / "widget.png")
    viewer.close()
    return 0


def trainer_screenshot(app, out: Path) -> None:
    """The trainer after a short training run on the procedural control and treated fields
    (tiny preset, 200 steps, into a temporary folder)."""
    import napari

    viewer = napari.Viewer(title="napari-cellflux", show=True)
    viewer.window.resize(1600, 1100)
    viewer.open_sample("napari-cellflux", "control_plate1")
    viewer.open_sample("napari-cellflux", "treated_plate1")
    _, trainer = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux trainer")
    viewer.window.resize(1600, 1100)
    control, treated = trainer.data_panel.rows
    for row in (control, treated):
        row.plate.value = "SynPlate1"
    treated.perturbation.value, treated.dose.value = "taxol", "3"
    rp = trainer.recipe_panel
    rp.preset.value, rp.steps.value, rp.batch_size.value = "tiny", 200, 16
    rp.out.value = tempfile.mkdtemp(prefix="cellflux-trainer-")
    trainer.train()  # prepares the two images, then trains
    wait_until(app, lambda: trainer.job is not None and not trainer.training)
    trainer._poll()
    shown = ("control SynPlate1", "CellFlux training cells of control SynPlate1")
    for layer in viewer.layers:
        layer.visible = layer.name.startswith(shown)
    trainer.scroll_to_plot()
    wait_until(app, lambda: True)
    viewer.screenshot(str(out / "trainer.png"), canvas_only=False, flash=False)
    print("wrote", out / "trainer.png", "-", trainer.status.value)
    viewer.close()


def procedural_virtual_plate(folder: Path) -> Path:
    """A virtual plate of the procedural cells with the demo weights (about a minute on two
    cores): each demo compound at four doses in rows A-D, a compound without SMILES and one
    far from training in row E, controls in column 1; the procedural treated cells, put in
    the same wells, are the real plate beside it."""
    import pandas as pd

    from evaluation.virtual_plate import PlateRequest, run_virtual_plate
    from napari_cellflux.core.formats.crops_dataset import save_crops
    from napari_cellflux.core.formats.weights import demo_weights_path
    from napari_cellflux.core.synthetic.generator import make_crops

    compounds, doses = ["cyclohexamide", "latrunculin B", "nocodazole", "taxol"], [0.3, 1, 3, 10]
    images, meta = make_crops(8, size=64, plates=["SynPlate1"], compounds=compounds,
                              doses=doses, n_controls=32)  # fmt: skip
    well = {("DMSO", 0.0): [f"{r}01" for r in "ABCD"]}
    for i, c in enumerate(compounds):
        for j, d in enumerate(doses):
            well[(c, float(d))] = [f"{'ABCD'[i]}{j + 2:02d}"]
    meta["well"] = [
        well[(c, float(d))][k % len(well[(c, float(d))])]
        for k, (c, d) in enumerate(zip(meta["compound"], meta["concentration_uM"], strict=True))
    ]
    save_crops(folder / "cells", images, meta)
    rows = [
        {"well": w, "perturbation": c, "dose_uM": d, "is_control": int(c == "DMSO")}
        for (c, d), wells in well.items()
        for w in wells
    ]
    rows += [
        {"well": "E02", "perturbation": "compound 17", "dose_uM": 1.0, "is_control": 0},
        {"well": "E03", "perturbation": "aspirin", "smiles": "CC(=O)Oc1ccccc1C(=O)O",
         "dose_uM": 3.0, "is_control": 0},
    ]  # fmt: skip
    pd.DataFrame(rows).fillna({"smiles": ""}).to_csv(folder / "map.csv", index=False)
    req = PlateRequest(
        model=str(demo_weights_path()), platemap=str(folder / "map.csv"),
        controls=str(folder / "cells"), readout="mean:Tubulin", cells=8, steps=10,
    )  # fmt: skip
    summary = run_virtual_plate(req, folder / "virtual_plate", real=str(folder / "cells"))
    print("virtual plate:", {k: summary.get(k) for k in ("simulated", "wall_s", "real")})
    return folder / "virtual_plate"


def virtual_plate_screenshot(app, out: Path) -> None:
    """The plate view of a procedural virtual plate beside its real plate, one well sent to
    the simulator and run."""
    import napari

    folder = procedural_virtual_plate(Path(tempfile.mkdtemp(prefix="cellflux-plate-")))
    viewer = napari.Viewer(title="napari-cellflux", show=True)
    viewer.window.resize(1600, 1100)
    _, plate = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux virtual plate")
    wait_until(app, lambda: True)
    plate.open(folder)
    plate.choose("D05")  # taxol 10 uM
    plate.simulate_well()
    wait_until(app, lambda: not plate.handoff.busy, timeout=120)
    sim = plate.handoff.simulator
    sim.run()
    wait_until(app, lambda: not sim.running)
    viewer.window.resize(1600, 1100)
    viewer.reset_view()
    wait_until(app, lambda: True)
    viewer.screenshot(str(out / "virtual_plate.png"), canvas_only=False, flash=False)
    print("wrote", out / "virtual_plate.png", "-", plate.status.value)
    viewer.close()


def dose_curve_screenshot(app, out: Path, args) -> None:
    """The dose-curve mode: the SynPlate1 control's cells at 12 doses of cyclohexamide, and
    procedural cyclohexamide fields at five doses, tagged as the trainer tags them, as the
    real points."""
    import napari

    from napari_cellflux._gui.sample_data import field_layer_data
    from napari_cellflux.core.synthetic.catalog import CHANNELS
    from napari_cellflux.core.synthetic.generator import make_field
    from napari_cellflux.core.trainer.layer_dataset import FieldTag

    viewer = napari.Viewer(title="napari-cellflux", show=True)
    viewer.window.resize(1600, 1100)
    viewer.open_sample("napari-cellflux", "control_plate1")
    for dose in (0.3, 1.0, 3.0, 10.0, 30.0):
        name = f"cyclohexamide {dose:g}uM SynPlate1"
        image = make_field("SynPlate1", "cyclohexamide", dose, shape=(384, 384), seed=1)
        tag = FieldTag(name, "SynPlate1", "cyclohexamide", "", dose, False)
        data, meta, _ = field_layer_data(name, image, tuple(CHANNELS), False, tag)
        viewer.add_image(data, **meta)
    _, widget = viewer.window.add_plugin_dock_widget("napari-cellflux", "CellFlux simulator")
    mp = widget.model_panel
    if args.weights or args.device != "auto":
        wait_until(app, lambda: widget.model is not None or "Could not" in mp.info.value)
        mp.weights.value, mp.device.value = args.weights, args.device
        widget.model = None
        widget.load_weights()
    wait_until(app, lambda: widget.model is not None, timeout=120)
    viewer.window.resize(1600, 1100)
    widget.input_panel.n_cells.value = args.cells
    widget.sampler_panel.steps.value = args.steps
    widget.perturbation_panel.known.value = "cyclohexamide"
    widget.dose_panel.curve_box.value = True
    curve = widget.dose_panel.curve
    curve.readout.value = "mean Actin"
    start = time.monotonic()
    curve.run()
    wait_until(app, lambda: not curve.running, timeout=3600)
    print(f"dose curve: {time.monotonic() - start:.0f} s")
    widget.scroll_to(curve.run_button)
    widget.scroll_to(curve.plot_box)
    wait_until(app, lambda: True)
    viewer.screenshot(str(out / "dose_curve.png"), canvas_only=False, flash=False)
    print("wrote", out / "dose_curve.png", "-", widget.status.value)
    viewer.close()


if __name__ == "__main__":
    raise SystemExit(main())
