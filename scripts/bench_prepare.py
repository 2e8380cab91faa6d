"""Speed and memory of ``python -m training.prepare`` on a generated screen (not a test).

Writes a screen of procedural fields (:func:`napari_cellflux.core.synthetic.generator.make_field`)
as TIFFs in two layouts, one file per channel and one (C, Y, X) file per site, with a 96-well
plain plate map, then runs the command on each layout in a subprocess and prints one JSON
object: fields per second, crops, wall time and the peak memory of the whole process tree
(the command and its worker processes, sampled every 0.2 s), plus the time of a second,
no-op run on the same inputs.

Usage::

    python scripts/bench_prepare.py                 # 4 plates x 96 wells x 6 sites, 256 px
    python scripts/bench_prepare.py --sites 2 --size 512 --workers 2 --keep /tmp/screen

Distinct fields are drawn once per condition and reused with flips, rotations and shifts, so
generating thousands of fields takes seconds; the command cannot tell (every image differs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SPARSE_WELL = "D07"
CONDITIONS = [
    ("DMSO", 0.0),
    ("cyclohexamide", 1.0),
    ("cyclohexamide", 10.0),
    ("taxol", 1.0),
    ("nocodazole", 3.0),
    ("latrunculin B", 1.0),
]


def _condition(well_index: int) -> tuple[str, float]:
    col = well_index % 12
    if col in (0, 11):  # columns 1 and 12: DMSO controls
        return CONDITIONS[0]
    return CONDITIONS[1 + (well_index // 12 + col) % (len(CONDITIONS) - 1)]


def write_screen(root: Path, plates: int, sites: int, size: int, seed: int = 0) -> dict:
    """Both layouts and the plate map under ``root``; returns counts."""
    import pandas as pd
    import tifffile

    from napari_cellflux.core.synthetic.catalog import COMPOUNDS
    from napari_cellflux.core.synthetic.generator import make_field

    rng = np.random.default_rng(seed)
    pool = {}
    for p in range(min(plates, 4)):
        for name, dose in CONDITIONS:
            for k in range(2):
                pool[(p, name, dose, k)] = make_field(
                    f"SynPlate{p + 1}",
                    None if name == "DMSO" else name,
                    dose,
                    (size, size),
                    seed=seed + k,
                )
        # A cytotoxic-looking well (D07): few cells left, as the QC heat map should show.
        pool[(p, "sparse")] = make_field(
            f"SynPlate{p + 1}", "taxol", 10.0, (size, size), n_cells=2, seed=seed
        )
    per_channel, multi = root / "per_channel", root / "multichannel"
    per_channel.mkdir(parents=True)
    multi.mkdir()
    rows = []
    n = 0
    for p in range(plates):
        for w in range(96):
            well = f"{'ABCDEFGH'[w // 12]}{w % 12 + 1:02d}"
            name, dose = _condition(w)
            if p == 0:
                rows.append(
                    {
                        "well": well,
                        "perturbation": name,
                        "dose_uM": dose,
                        "is_control": int(name == "DMSO"),
                        "smiles": COMPOUNDS[name].smiles if name in COMPOUNDS else "",
                    }
                )
            for s in range(sites):
                base = pool[(p % 4, name, dose, int(rng.integers(2)))]
                if well == SPARSE_WELL:
                    base = pool[(p % 4, "sparse")]
                img = np.rot90(base, int(rng.integers(4)))
                img = np.roll(img, tuple(rng.integers(0, size, 2)), axis=(0, 1))
                if rng.random() < 0.5:
                    img = img[:, ::-1]
                img = np.ascontiguousarray(img)
                for c in range(img.shape[-1]):
                    tifffile.imwrite(
                        per_channel / f"Plate{p + 1}_{well}_s{s + 1}_w{c + 1}.tif", img[..., c]
                    )
                tifffile.imwrite(
                    multi / f"Plate{p + 1}_{well}_s{s + 1}.tif",
                    np.moveaxis(img, -1, 0),
                    photometric="minisblack",
                )
                n += 1
    pd.DataFrame(rows).to_csv(root / "platemap.csv", index=False)
    return {"fields": n, "plates": plates, "wells": plates * 96, "sites": sites, "size": size}


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_prepare(args: list[str]) -> dict:
    """Run the command; wall time and peak memory of its process tree."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.prepare", *args, "--no-progress"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"prepare failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20), "stdout": out}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plates", type=int, default=4)
    p.add_argument("--sites", type=int, default=6, help="sites per well")
    p.add_argument("--size", type=int, default=256, help="field side in pixels")
    p.add_argument("--crop-size", type=int, default=48)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--keep", type=Path, help="write the screen here and keep it")
    p.add_argument(
        "--figure",
        type=Path,
        help="also save plate 1's QC heat map here (the picture in docs/own-screen.md)",
    )
    a = p.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    t = time.perf_counter()
    screen = write_screen(root, a.plates, a.sites, a.size)
    screen["generate_s"] = round(time.perf_counter() - t, 1)
    result = {"machine": {"cpus": os.cpu_count(), "workers": a.workers}, "screen": screen}
    common = [
        "--platemap",
        str(root / "platemap.csv"),
        "--crop-size",
        str(a.crop_size),
        "--workers",
        str(a.workers),
    ]
    layouts = {
        "per_channel": [
            "--images",
            str(root / "per_channel"),
            "--pattern",
            r"(?P<plate>Plate\d+)_(?P<well>[A-H]\d+)_s(?P<site>\d+)_w(?P<channel>\d)"
            r"\.tif",
            "--channels",
            "DNA=1,Tubulin=2,Actin=3",
        ],
        "multichannel": [
            "--images",
            str(root / "multichannel"),
            "--pattern",
            r"(?P<plate>Plate\d+)_(?P<well>[A-H]\d+)_s(?P<site>\d+)\.tif",
            "--channels",
            "DNA,Tubulin,Actin",
        ],
    }
    for name, args in layouts.items():
        out = root / f"out_{name}"
        first = run_prepare([*args, *common, "--out", str(out)])
        again = run_prepare([*args, *common, "--out", str(out)])
        manifest = json.loads((out / "prepare.json").read_text())
        result[name] = {
            "fields": manifest["n_fields"],
            "crops": manifest["n_crops"],
            "wall_s": first["wall_s"],
            "fields_per_s": round(manifest["n_fields"] / first["wall_s"], 1),
            "peak_rss_mb": first["peak_rss_mb"],
            "crops_npz_mb": round((out / "crops.npz").stat().st_size / 2**20),
            "rerun_no_op_s": again["wall_s"],
        }
    if a.figure:
        import shutil

        shutil.copyfile(root / "out_per_channel" / "qc" / "plate_Plate1.png", a.figure)
    print(json.dumps(result, indent=1))
    if a.keep is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
