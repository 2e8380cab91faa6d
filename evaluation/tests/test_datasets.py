"""The evaluation scores models on every dataset training reads: the IMPA layout (one .npy
per crop) and gene perturbations, not only the crops format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import cli as evaluate_cli
from evaluation.data import read_evaluation_data
from training.run import main as train
from training.tests.helpers import make_synthetic, tiny_args

QUICK = ["--max-cells", "4", "--steps", "1", "--n-boot", "5", "--baselines", "identity"]


def _scored(model: Path, data: Path, out: Path, *extra: str) -> dict:
    assert (
        evaluate_cli.main(
            ["--model", str(model), "--data", str(data), "--out", str(out), *QUICK, *extra]
        )
        == 0
    )
    return json.loads(out.read_text())


def _impa_from_synthetic(root: Path) -> tuple[Path, Path]:
    """Procedural crops (two plates, controls + two compounds at two doses) written in the
    IMPA layout: metadata/df.csv + <week>/<plate>/<key>.npy, and an emb_fp.csv table."""
    from napari_cellflux.core.conditions.perturbations import compound_fingerprint
    from napari_cellflux.core.synthetic.generator import make_crops

    images, meta = make_crops(
        8,
        size=32,
        plates=["SynPlate1", "SynPlate2"],
        compounds=["cyclohexamide", "taxol"],
        doses=[1.0, 10.0],
    )
    rows = []
    for k, (img, row) in enumerate(zip(images, meta.itertuples(), strict=True)):
        rest = f"{str(row.compound)[:3].upper()}{int(row.concentration_uM)}_s1_{k}"
        path = root / "W1" / str(row.plate) / f"{rest}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, img)
        rows.append(
            {
                "SAMPLE_KEY": f"W1_{row.plate}_{rest}",
                "CPD_NAME": row.compound,
                "BATCH": f"W1_{row.plate}",
                "STATE": 0 if row.is_control else 1,
                "DOSE": row.concentration_uM,
                "ANNOT": "x",
                "SPLIT": "train",
            }
        )
    (root / "metadata").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "metadata" / "df.csv")
    smiles = dict(zip(meta["compound"], meta["smiles"], strict=True))
    emb = root / "emb_fp.csv"
    pd.DataFrame(
        {c: compound_fingerprint(smiles[c]) for c in ("cyclohexamide", "taxol")}
    ).T.to_csv(emb)
    return root, emb


def test_impa_layout_is_scored(tmp_path):
    root, emb = _impa_from_synthetic(tmp_path / "impa")
    images, meta = read_evaluation_data(root)
    assert images.shape[1:] == (32, 32, 3) and images.dtype == np.uint16
    assert set(meta["plate"]) == {"W1_SynPlate1", "W1_SynPlate2"}
    assert meta["is_control"].any() and not meta["is_control"].all()
    assert (
        train(
            tiny_args(
                root,
                tmp_path / "m",
                2,
                "--compound-embeddings",
                str(emb),
                "--holdout-plates",
                "W1_SynPlate2",
            )
        )
        == 0
    )
    metrics = _scored(tmp_path / "m" / "model.safetensors", root, tmp_path / "m.json")
    assert {c["plate"] for c in metrics["conditions"]} == {"W1_SynPlate2"}
    fdc = metrics["summary"]["cellflux"]["FDc"]["value"]
    assert np.isfinite(fdc) and fdc > 0


def test_gene_model_is_scored(tmp_path):
    """Procedural crops relabelled as two gene knock-outs (a crops dataset with a gene column)."""
    data = make_synthetic(tmp_path / "genes")
    meta = pd.read_csv(data / "metadata.csv")
    meta["gene"] = meta["compound"].map({"cyclohexamide": "TP53", "taxol": "MYC"}).fillna("")
    meta["compound"] = ""
    meta = meta.drop(columns=["smiles"])
    meta.to_csv(data / "metadata.csv", index=False)
    emb = tmp_path / "g2v.csv"
    pd.DataFrame(
        np.arange(15, dtype=float).reshape(3, 5) - 4, index=["TP53", "MYC", "KRAS"]
    ).to_csv(emb)
    assert (
        train(
            tiny_args(
                data,
                tmp_path / "m",
                2,
                "--gene-embeddings",
                str(emb),
                "--holdout-plates",
                "SynPlate2",
            )
        )
        == 0
    )
    metrics = _scored(tmp_path / "m" / "model.safetensors", data, tmp_path / "m.json")
    assert {c["perturbation"] for c in metrics["conditions"]} == {"TP53", "MYC"}
    assert {c["plate"] for c in metrics["conditions"]} == {"SynPlate2"}
    assert np.isfinite(metrics["summary"]["cellflux"]["FDc"]["value"])
