"""``load_model``: a weights file (or the bundled demo weights) -> a
:class:`~.model.CellFluxModel`; without demo weights, an untrained ``tiny`` model that says
so, so that everything runs end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..formats.weights import demo_weights_path, read_weights, resolve_device
from ..network.config import preset
from .model import CellFluxModel
from .model_card import ModelCard, VocabularyEntry

__all__ = ["DEFAULT_CHANNELS", "load_model"]

DEFAULT_CHANNELS = ("DNA", "Tubulin", "Actin")
# Structures of three BBBC021 compounds (public chemistry), used only by the untrained fallback.
_FALLBACK_VOCAB = {
    "cyclohexamide": "CC1CC(C)C(=O)C(C1)C(O)CC2CC(=O)NC(=O)C2",
    "nocodazole": "COC(=O)Nc1nc2cc(ccc2[nH]1)C(=O)c3cccs3",
    "taxol": "CC(=O)O[C@H]1C(=O)[C@]2(C)[C@@H](O)C[C@H]3OC[C@@]3(OC(=O)C)[C@H]2[C@H]"
    "(OC(=O)c4ccccc4)[C@]5(O)C[C@H](OC(=O)[C@H](O)[C@@H](NC(=O)c6ccccc6)c7ccccc7)"
    "C(=C1C5(C)C)C",
}


def _random_tiny(device: Any, jump: bool = False) -> CellFluxModel:
    """An untrained ``tiny`` model (says so in its metadata) so everything runs end to end;
    ``jump``: a jump network (``UNetConfig.jump``) whose card defaults to solver ``jump``,
    as ``training.run --objective jump`` writes it (tests and speed figures)."""
    import torch

    from ..conditions.perturbations import compound_fingerprint
    from ..network.unet import VelocityUNet

    cfg = preset("tiny", cond_dim=1024 + 1, jump=jump)
    torch.manual_seed(0)
    net = VelocityUNet(cfg)
    vocab = tuple(
        VocabularyEntry(name=k, smiles=v, doses_uM=(1.0,)) for k, v in _FALLBACK_VOCAB.items()
    )
    vectors = np.stack([compound_fingerprint(v) for v in _FALLBACK_VOCAB.values()])
    card = ModelCard(
        config=cfg,
        preset="tiny",
        channels=DEFAULT_CHANNELS,
        norm_low=(0, 0, 0),
        norm_high=(4000, 4000, 4000),
        kind="compound",
        vocabulary=vocab,
        use_dose=True,
        name="untrained-tiny",
        description="Randomly initialised; predicts no real effect.",
        untrained=True,
        defaults={"solver": "jump"} if jump else {},
    )
    return CellFluxModel(net, card, vectors, device)


def load_model(path: str | Path | None = None, device: str = "auto") -> CellFluxModel:
    """Load a model from a ``.safetensors`` weights file (None: the bundled demo weights).

    Parameters
    ----------
    path
        A ``model.safetensors`` written by ``python -m training.run`` (not the training
        ``checkpoint.safetensors`` beside it); None loads the demo weights shipped in the
        package (or, if absent, an untrained ``tiny`` model marked as such).
    device
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Raises
    ------
    ValueError
        For a missing, foreign, corrupted or edited file, a folder, an empty path, a
        training checkpoint, or an unavailable device; the message says what to load.
    """
    from ..network.unet import VelocityUNet

    dev = resolve_device(device)
    if path is None:
        demo = demo_weights_path()
        if not demo.is_file():
            return _random_tiny(dev)
        path = demo
    state, meta, vectors = read_weights(path)  # says what to choose for a bad path
    path = Path(path)
    try:
        card = ModelCard.from_dict(meta)
        net = VelocityUNet(card.config)
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{path.name} does not match the napari-cellflux network ({exc}); it may come "
            "from another version. Retrain with `python -m training.run`."
        ) from None
    return CellFluxModel(net, card, vectors, dev, path=path)
