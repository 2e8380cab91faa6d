"""The dose-curve table of docs/dose-curves.md reads what evaluation.dose_curve writes."""

from __future__ import annotations

import json

from benchmarks.dose_curve_table import table


def test_the_table_shows_ec50s_ratio_errors_and_ks_split_by_trained_dose(tmp_path):
    fit = {"status": "fit", "ec50_uM": 0.01, "top": 5.0, "intervals": {"ec50_uM": [0.008, 0.012]}}
    result = {
        "perturbations": {
            "wortmannin": {
                "real": fit,
                "simulated": {
                    **fit,
                    "ec50_uM": 0.02,
                    "top": 4.5,
                    "intervals": {"ec50_uM": [0.016, 0.024]},
                },
                "ec50_ratio": {"value": 2.0, "ci_low": 1.5, "ci_high": 2.6},
                "top_error": -0.1,
                "bottom_error": 0.05,
                "spearman": 0.95,
                "ks": {
                    "0.001": {"ks": 0.1, "trained": True},
                    "0.002": {"ks": 0.3, "trained": False},
                    "0.004": {"ks": 0.2, "trained": True},
                },
            },
            "flat": {"simulated": {"status": "flat", "top": 1.0}, "spearman": 0.1, "ks": {}},
        }
    }
    path = tmp_path / "run" / "curve.json"
    path.parent.mkdir()
    path.write_text(json.dumps(result))
    lines = table([path]).splitlines()
    assert len(lines) == 4
    assert "| run/curve | wortmannin | 10 nM [8 nM, 12 nM] | 20 nM [16 nM, 24 nM] |" in lines[2]
    assert "2.00 [1.50, 2.60]" in lines[2] and "-10% / +5%" in lines[2]
    assert lines[2].endswith("| 0.95 | 0.20 / 0.20 | 0.30 / 0.30 |")
    assert "| flat | - | flat | - |" in lines[3]
