"""``python -m training.run`` and the crops reader on bad input (issue 26): doses are checked
where they enter (the dataset reader), every crop is checked for NaN / inf and the batch for
memory before the first step, and each refusal is one line that names the crop, the row or
the flag, with what to do. Nothing is written to --out when training is refused."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_cellflux.core.formats.crops_dataset import load_crops
from training import preflight
from training.config import TrainConfig
from training.crop_files import DataError, open_npz_array
from training.readers import read_dataset
from training.run import main as run_main
from training.tests.helpers import error_line, make_synthetic, syn_images, tiny_args


def _with_doses(src: Path, dst: Path, treated_dose: float, rows: slice = slice(None)) -> Path:
    """``src`` with ``treated_dose`` as the concentration of its treated crops (of ``rows``)."""
    dst.mkdir(parents=True)
    np.savez(dst / "crops.npz", images=syn_images(src))
    meta = pd.read_csv(src / "metadata.csv")
    treated = np.flatnonzero(~meta["is_control"].astype(bool).to_numpy())[rows]
    meta.loc[treated, "concentration_uM"] = treated_dose
    meta.to_csv(dst / "metadata.csv", index=False)
    return dst


# --------------------------------------------------------------------------- doses


@pytest.mark.parametrize(
    ("dose", "rows", "match"),
    [
        (-5.0, slice(None), r"64 row\(s\) have a negative or infinite concentration_uM, e\.g\. "
         r"crop 8 \(line 10; plate SynPlate1, compound cyclohexamide\): -5"),
        (np.inf, slice(0, 1), r"1 row\(s\) have a negative or infinite .*: inf"),
        (np.nan, slice(0, 3), r"3 treated row\(s\) have no concentration_uM while other "
         r"treated rows have one, e\.g\. crop 8 .*leave concentration_uM empty in every"),
    ],
)  # fmt: skip
def test_bad_doses_are_refused_where_they_enter(syn_dir, tmp_path, dose, rows, match):
    """They used to be read (NaN as 0: untreated) and trained on."""
    data = _with_doses(syn_dir, tmp_path / "bad", dose, rows)
    with pytest.raises(DataError, match=match):
        read_dataset(TrainConfig(data=str(data), out="unused"))
    with pytest.raises(ValueError, match=match):  # the format's owner says the same
        load_crops(data)


def test_a_negative_single_dose_is_refused_before_training(tmp_path, capsys):
    """-5 uM as the one dose of every compound used to train (and to be served as a dose)."""
    data = _with_doses(
        make_synthetic(tmp_path / "one_dose", doses=(10.0,)), tmp_path / "negative", -5.0
    )
    out = tmp_path / "run"
    assert run_main(tiny_args(data, out, 2)) == 2
    line = error_line(capsys.readouterr().err)
    assert "32 row(s) have a negative or infinite concentration_uM" in line
    assert "A dose is a concentration in uM, 0 or above" in line
    assert not out.exists()


def test_doses_left_empty_on_every_treated_crop_still_read(syn_dir, tmp_path):
    """A screen without doses (what training.prepare writes from a map without them)."""
    data = _with_doses(syn_dir, tmp_path / "no_doses", np.nan)
    raw = read_dataset(TrainConfig(data=str(data), out="unused"))
    assert set(raw.meta["dose"]) == {0.0}


# --------------------------------------------------------------------------- crops


def test_nonfinite_crops_are_found_in_chunks_of_a_memory_map(tmp_path):
    images = np.ones((50, 8, 8, 2), np.float32)
    images[3, 0, 0, 0] = np.nan
    images[40] = -np.inf
    np.savez(tmp_path / "crops.npz", images=images)  # stored: mapped in place, not read whole
    mapped = open_npz_array(tmp_path / "crops.npz")
    per_crop = 8 * 8 * 2 * 4
    assert preflight.nonfinite_crops(mapped, chunk_bytes=7 * per_crop).tolist() == [3, 40]
    assert preflight.nonfinite_crops(images[:3]).size == 0

    class Unread:  # integer crops cannot hold NaN: not a pixel is read
        dtype, shape = np.dtype(np.uint16), (10**9, 64, 64, 3)

        def __getitem__(self, index):
            raise AssertionError("integer crops were read")

    assert preflight.nonfinite_crops(Unread()).size == 0


def test_a_nan_crop_is_named_before_training(syn_dir, tmp_path, capsys):
    """Among 1200 crops, more than the 1024 the intensity sample reads, an all-NaN crop used
    to be found only when the loss became NaN, at the step that drew it."""
    images = np.tile(syn_images(syn_dir).astype(np.float32), (15, 1, 1, 1))
    images[1100] = np.nan
    data = tmp_path / "nan"
    data.mkdir()
    np.savez(data / "crops.npz", images=images)
    meta = pd.read_csv(syn_dir / "metadata.csv")
    pd.concat([meta] * 15, ignore_index=True).to_csv(data / "metadata.csv", index=False)
    out = tmp_path / "run"
    assert run_main(tiny_args(data, out, 2)) == 2
    line = error_line(capsys.readouterr().err)
    expected = meta.iloc[1100 % len(meta)]
    assert (
        f"1 crop(s) hold NaN or infinite pixel values, e.g. crop 1100 (plate {expected['plate']}"
        in line
    )
    assert "with 3072 of its 3072 values" in line and "save the dataset again" in line
    assert not out.exists()


# --------------------------------------------------------------------------- flags


def test_a_batch_that_cannot_fit_is_refused_with_one_that_does(
    syn_dir, tmp_path, capsys, monkeypatch
):
    """--batch-size 100000 used to end in the allocator's error (or the OOM killer)."""
    monkeypatch.setattr(preflight, "available_memory", lambda device: (256 << 20, "test"))
    out = tmp_path / "run"
    assert run_main(tiny_args(syn_dir, out, 1, "--batch-size", "100000")) == 2
    line = error_line(capsys.readouterr().err)
    assert "--batch-size 100000 needs at least" in line and "only 256 MiB is free (test)" in line
    fits = int(re.search(r"pass --batch-size (\d+) or less", line).group(1))
    assert 16 <= fits < 256  # the tiny preset keeps about 2 MiB per pair of 32 px crops
    assert not out.exists()
    assert run_main(tiny_args(syn_dir, out, 1, "--batch-size", str(fits))) == 0


def test_available_memory_reads_proc_meminfo_without_psutil(monkeypatch):
    if not Path("/proc/meminfo").is_file():
        pytest.skip("needs Linux /proc/meminfo")
    with_psutil, where = preflight.available_memory("cpu")
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    without, _ = preflight.available_memory("cpu")
    assert where == "system memory" and without is not None
    assert abs(without - with_psutil) < 0.2 * with_psutil  # the same figure, a moment apart


def test_a_negative_seed_names_the_flag(syn_dir, tmp_path, capsys):
    """It used to say 'expected non-negative integer', after reading the data."""
    out = tmp_path / "run"
    assert run_main(tiny_args(syn_dir, out, 2, "--seed", "-1")) == 2
    line = error_line(capsys.readouterr().err)
    assert "seed (--seed) must be a whole number 0 or above, got -1" in line
    assert not out.exists()
