"""What a run of the run lists is: the models it trains (:class:`Model`), the command that
writes its results (:class:`Evaluation`) and the files those results become in
docs/benchmarks/ (:class:`Publish`).

The run lists themselves are data built from these: :mod:`benchmarks.runs` (the tables of
docs/benchmarks.md), :mod:`benchmarks.runs_dose` (docs/experiments/dose-recipes.md),
:mod:`benchmarks.runs_bbbc013` (docs/dose-curves.md, docs/virtual-plate.md) and
:mod:`benchmarks.runs_speed` (the Speed section). ``python -m benchmarks.make`` turns them
into commands; ``python -m benchmarks.make --list`` prints every run and what it writes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

REPO = Path(__file__).resolve().parents[1]
METRICS_DIR = REPO / "docs" / "benchmarks"
DATA = (REPO / ".." / "shared" / "data").resolve()
BBBC = DATA / "bbbc021_cyclohexamide"
SMILES = DATA / "bbbc021_annotations" / "BBBC021_v1_compound.csv"
#: Crops datasets written into the work directory, by a model's ``data``: the procedural
#: plates (``core.synthetic.generator``) and BBBC013 (``python -m training.prepare``).
WORK_DATA = {"syn": "syn_data", "bbbc013": "bbbc013_data"}
SYN_DATA = WORK_DATA["syn"]

# The command-line entry points, each in one place.
TRAIN = ("-m", "training.run")
#: A model trained from Gaussian noise instead of control crops (the noise-start baseline).
TRAIN_FROM_NOISE = (*TRAIN, "--source", "noise")
EVALUATE = ("-m", "evaluation")
REVERSIBILITY = ("-m", "evaluation.reversibility")

#: Training flags every benchmark model of docs/benchmarks.md shares; a model's own flags
#: replace these. Noise sigma 1 is the paper-style recipe the benchmarks were first run with;
#: the models of the default recipe (sigma 0.1) say so themselves. The dose settings are
#: those the published models were trained with (the defaults before the dose-response
#: work), so the published tables stay reproducible. Other run lists give their models a
#: recipe of their own (``Model.recipe``).
RECIPE: Mapping[str, Value] = MappingProxyType(
    {
        "--dose-encoding": "log1p",
        "--control-anchor": "0",
        "--preset": "fast",
        "--steps": "300",
        "--batch-size": "32",
        "--lr": "3e-4",
        "--noise-scale": "1",
        "--seed": "0",
        "--no-progress": None,
        "--log-every": "20",
    }
)


#: A command-line flag's value: one word, several (``--holdout-wells C G``) or none.
Value = str | tuple[str, ...] | None


def _flags(flags: Mapping[str, Value]) -> list[str]:
    return [
        a
        for k, v in flags.items()
        for a in ((k,) if v is None else (k, *v) if isinstance(v, tuple) else (k, v))
    ]


@dataclass(frozen=True)
class Model:
    """One trained model: ``<workdir>/<name>/model.safetensors``.

    ``flags`` replace those of ``recipe``; ``data`` is ``bbbc`` (BBBC021 in ../shared/data)
    or a key of :data:`WORK_DATA` (a dataset make writes into the work directory first).
    """

    name: str
    flags: Mapping[str, Value]
    data: str = "bbbc"
    from_noise: bool = False  # the noise-start baseline: trained without control starts
    recipe: Mapping[str, Value] = field(default_factory=lambda: RECIPE)

    def command(self, work: Path) -> list[str]:
        """The training command (without ``--resume``, which make adds when resuming)."""
        data = (
            ["--data", str(BBBC), "--smiles-table", str(SMILES)]
            if self.data == "bbbc"
            else ["--data", str(work / WORK_DATA[self.data])]
        )
        flags = {**self.recipe, **self.flags, "--out": str(work / self.name)}
        entry = TRAIN_FROM_NOISE if self.from_noise else TRAIN
        return [sys.executable, *entry, *data, *_flags(flags)]


@dataclass(frozen=True)
class Publish:
    """One file of docs/benchmarks/ a run writes.

    ``doc`` is its path there; ``source`` the file inside the run's ``--out`` folder it is
    copied from (empty: ``--out`` is that file); with ``key``, the output is stored under
    that key of ``doc`` instead (one JSON file holding the outputs of several runs).
    """

    doc: str
    source: str = ""
    key: str = ""

    def __str__(self) -> str:
        return f"{self.doc} [{self.key}]" if self.key else self.doc


@dataclass(frozen=True)
class Evaluation:
    """One named run: the command that writes its results, and the files they become.

    ``models`` are (flag, model folder, row name) in command order; a row name of ``None``
    passes the bare file (``--model FILE``), otherwise ``NAME=FILE``. ``args`` may hold
    ``{work}`` (the work directory). ``labels`` name every table row, in table order,
    including the rows the evaluation adds itself (identity, mean shift, other plate, no
    guidance). The command writes ``out`` in the work directory (default
    ``metrics_<name>.json``): through ``--out``, or, with ``stdout``, as what it prints.
    ``publish`` says which files of docs/benchmarks/ that becomes (default: ``out`` under
    the same name). ``prefix`` comes before the interpreter (``xvfb-run`` for the viewer).
    """

    name: str
    models: tuple[tuple[str, str, str | None], ...]
    args: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    entry: tuple[str, ...] = EVALUATE
    out: str = ""
    publish: tuple[Publish, ...] = ()
    stdout: bool = False
    prefix: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        """What the command writes in the work directory (a file, or a folder)."""
        return self.out or f"metrics_{self.name}.json"

    @property
    def files(self) -> tuple[Publish, ...]:
        """The files of docs/benchmarks/ this run writes."""
        return self.publish or (Publish(self.output),)

    def command(self, work: Path) -> list[str]:
        """The command, writing ``<workdir>/<output>`` (given to ``--out`` unless
        ``stdout``: then the caller keeps what it prints)."""
        files = [
            a
            for flag, folder, row in self.models
            for a in (flag, (f"{row}=" if row else "") + str(work / folder / "model.safetensors"))
        ]
        cmd = [
            *self.prefix,
            sys.executable,
            *self.entry,
            *files,
            *(a.format(work=work) for a in self.args),
        ]
        return cmd if self.stdout else [*cmd, "--out", str(work / self.output)]
