"""Helpers shared by the training and evaluation tests: small synthetic crops datasets, a CLI
runner and the fixtures both suites use (imported by their conftest files).

Everything runs on the ``tiny`` preset with one CPU thread per process, so the suites stay
short on a 2-core machine that other jobs share.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
#: Two BBBC021 compounds (public chemistry).
SMILES = {
    "cyclohexamide": "CC1CC(C)C(=O)C(C1)C(O)CC2CC(=O)NC(=O)C2",
    "nocodazole": "COC(=O)Nc1nc2cc(ccc2[nH]1)C(=O)c3cccs3",
}
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One torch thread: the suites share two cores with other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_synthetic(
    folder: Path,
    n: int = 8,
    size: int = 32,
    plates=("SynPlate1", "SynPlate2"),
    compounds=("cyclohexamide", "taxol"),
    doses=(1.0, 10.0),
    seed: int = 0,
    **columns,
) -> Path:
    """A crops dataset from core.synthetic.generator (optionally with extra/replaced columns)."""
    from napari_cellflux.core.formats.crops_dataset import save_crops
    from napari_cellflux.core.synthetic.generator import make_crops

    images, meta = make_crops(
        n, size=size, plates=list(plates), compounds=list(compounds), doses=list(doses), seed=seed
    )
    for key, value in columns.items():
        if value is None:
            meta = meta.drop(columns=[key])
        else:
            meta[key] = value
    save_crops(folder, images, meta)
    return folder


@pytest.fixture(scope="session")
def syn_dir(tmp_path_factory) -> Path:
    """80 crops: 2 plates x (DMSO + 2 compounds x 2 doses) x 8, 32 px, uint16."""
    return make_synthetic(tmp_path_factory.mktemp("syn") / "crops")


@pytest.fixture()
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


def cli_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_cli(
    *args: str,
    timeout: float = 240,
    module: tuple[str, ...] = ("-m", "training.run"),
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``python -m training.run ARGS`` from the repository root."""
    cmd = [sys.executable, *module, *map(str, args)]
    proc = subprocess.run(
        cmd, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        err = proc.stderr
        if len(err) > 8000:  # the first error (e.g. a worker's own traceback) and the end
            err = f"{err[:4000]}\n[... {len(err) - 8000} characters ...]\n{err[-4000:]}"
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return proc


def tiny_args(data: Path, out: Path, steps: int = 10, *extra: str) -> list[str]:
    return [
        "--data",
        str(data),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--no-progress",
        "--threads",
        "1",
        *extra,
    ]


def rng_images(n: int, size: int = 24, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(100, 4000, size=(n, size, size, channels)).astype(np.uint16)


def error_line(err: str) -> str:
    """The CLI convention: exactly one line, 'error: ...', and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random 3-channel (DNA, Tubulin, Actin) model file."""
    import torch

    from napari_cellflux.core.simulation.load import _random_tiny

    return _random_tiny(torch.device("cpu")).save(
        tmp_path_factory.mktemp("model") / "tiny.safetensors"
    )


def resave_crops(src: Path, dst: Path, images: np.ndarray) -> Path:
    """The dataset ``src`` with its crops replaced by ``images`` (same metadata rows)."""
    dst.mkdir(parents=True)
    np.savez(dst / "crops.npz", images=images)
    pd.read_csv(src / "metadata.csv").to_csv(dst / "metadata.csv", index=False)
    return dst


def syn_images(syn_dir: Path) -> np.ndarray:
    with np.load(syn_dir / "crops.npz") as f:
        return f["images"]


def build_impa(root, n_per=4, split_test=1):
    """An IMPA-shaped BBBC021 folder: metadata/bbbc021_df.csv + <week>/<plate>/<rest>.npy."""
    rows = []
    rng = np.random.default_rng(0)
    for week, plate in (("Week1", "22123"), ("Week2", "24121")):
        for cpd, dose, state in (
            ("DMSO", 0.0, 0),
            ("cyclohexamide", 15.0, 1),
            ("cyclohexamide", 50.0, 1),
            ("nocodazole", 1.0, 1),
        ):
            for k in range(n_per):
                key = f"{week}_{plate}_{cpd[:3].upper()}{int(dose)}_s1_{k}"
                path = root / week / plate / ("_".join(key.split("_")[2:]) + ".npy")
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, rng.integers(0, 255, (24, 24, 3)).astype(np.uint8))
                rows.append(
                    {
                        "SAMPLE_KEY": key,
                        "CPD_NAME": cpd,
                        "BATCH": f"{week}_{plate}",
                        "STATE": state,
                        "DOSE": dose,
                        "ANNOT": "x",
                        "SPLIT": "test" if k < split_test else "train",
                    }
                )
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "metadata" / "bbbc021_df.csv")  # with an index column
    emb = root / "emb_fp.csv"
    from napari_cellflux.core.conditions.perturbations import compound_fingerprint

    pd.DataFrame({k: compound_fingerprint(v) for k, v in SMILES.items()}).T.to_csv(emb)
    return root, emb
