"""The run list of the NF-kB check on BBBC014 with jump weights (docs/jump-sampler.md):
``python -m evaluation.nfkb`` trains the trainer widget's recipe with ``--objective jump``
in its work folder (the real cells stay there) and measures the held-out cells, once with
the solver that was their default then (midpoint), once with the ``jump`` solver and once
with ``midpoint-pairs`` (their default now); the later runs reuse the trained model. The
flow-matching figures of docs/nfkb.md predate this list.
"""

from __future__ import annotations

from benchmarks.run_spec import DATA, Evaluation, Publish

FIELDS = DATA / "fields" / "bbbc014_nfkb"


def _nfkb(solver: str) -> Evaluation:
    name = f"nfkb_jump_{solver}"
    return Evaluation(
        name,
        (),
        (
            *("--fields", str(FIELDS), "--work", "{work}/nfkb_jump", "--threads", "1"),
            *("--objective", "jump", "--solver", solver),
            *("--figure", f"{{work}}/{name}.png"),
        ),
        entry=("-m", "evaluation.nfkb"),
        out=f"{name}.json",
        publish=(Publish(f"nfkb/{name}.json"),),
    )


EVALUATIONS: dict[str, Evaluation] = {
    e.name: e for e in (_nfkb("midpoint"), _nfkb("jump"), _nfkb("midpoint-pairs"))
}
