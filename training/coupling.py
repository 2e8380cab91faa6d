"""Which control each treated crop of a batch flows from: random or minibatch optimal transport.

CellFlux pairs every treated crop x1 with a control crop x0 drawn at random from the same plate
(the independent coupling). Flow matching then learns the average of many crossing straight
paths, and the learned map keeps only what the network can infer of where a cell "should" go.

``ot`` re-pairs the controls already drawn for a batch, plate by plate, so that the total
squared pixel distance between paired crops is smallest (an exact assignment,
:func:`scipy.optimize.linear_sum_assignment`): the minibatch optimal-transport coupling of
Tong et al. (2024, "Improving and generalizing flow-based generative models with minibatch
optimal transport") and Pooladian et al. (2023). The set of controls and of treated crops in
the batch is unchanged (both marginals are kept); only who is paired with whom changes, and
never across plates, so the batch effect is still learned from same-plate pairs. Paths cross
less, so a bright control stays brighter than a dim one after the drug: what the control
carries of its plate is kept, which is what the side-by-side batch view relies on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["COUPLINGS", "ot_permutation"]

#: ``--coupling`` choices of ``python -m training.run``.
COUPLINGS = ("random", "ot")


def ot_permutation(x0: torch.Tensor, x1: torch.Tensor, groups: np.ndarray) -> np.ndarray:
    """Order of the controls that pairs each ``x1[i]`` with ``x0[perm[i]]`` at least cost.

    ``groups`` (one label per row, e.g. the plate) restricts pairs to rows of the same label:
    ``perm[i]`` always has ``groups[perm[i]] == groups[i]``. The cost is the squared L2
    distance between whole crops (as the network sees them, after augmentation); the
    assignment is exact within each group.
    """
    from scipy.optimize import linear_sum_assignment

    n = len(groups)
    if x0.shape != x1.shape or x0.shape[0] != n:
        raise ValueError(
            f"x0 {tuple(x0.shape)}, x1 {tuple(x1.shape)} and {n} group labels "
            "must describe the same batch"
        )
    flat0 = x0.detach().reshape(n, -1).float()
    flat1 = x1.detach().reshape(n, -1).float()
    perm = np.arange(n)
    for label in np.unique(groups):
        rows = np.flatnonzero(groups == label)
        if len(rows) < 2:
            continue
        a, b = flat1[rows], flat0[rows]
        cost = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        _, cols = linear_sum_assignment(cost.cpu().double().numpy())
        perm[rows] = rows[cols]
    return perm
