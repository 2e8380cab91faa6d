"""The model card: what a weights file says about its model, typed and checked."""

from __future__ import annotations

import dataclasses

import pytest

from napari_cellflux.core.network.config import preset
from napari_cellflux.core.simulation.model_card import ModelCard, VocabularyEntry


def _card(**changes) -> ModelCard:
    fields = dict(
        config=preset("tiny", cond_dim=8),
        preset="tiny",
        channels=("DNA", "Tubulin", "Actin"),
        norm_low=(0, 0, 0),
        norm_high=(4000, 4000, 4000),
        kind="compound",
        vocabulary=(
            VocabularyEntry("taxol", (1.0, 10.0), smiles="CCO"),
            VocabularyEntry("unseen", trained=False),
        ),
        use_dose=True,
        training_data={"held_out": {"plates": ["P3"]}},
    )
    return ModelCard(**{**fields, **changes})


def test_a_card_survives_the_weights_file_json_unchanged():
    card = _card()
    again = ModelCard.from_dict(card.to_dict())
    assert again == card
    assert again.perturbations == ["taxol"] and again.doses("taxol") == [1.0, 10.0]
    assert again.doses("unknown") == [] and again.all_doses() == [1.0, 10.0]
    assert dict(again.held_out) == {"plates": ["P3"]} and again.crop_size == 32
    assert dict(again.defaults) == {"guidance": 1.2, "steps": 20, "solver": "midpoint"}


def test_jump_weights_default_to_midpoint_pairs_and_a_file_keeps_its_solver():
    jump = _card(config=preset("tiny", cond_dim=8).replace(jump=True))
    assert jump.defaults["solver"] == "midpoint-pairs"  # one pass per frame, as faithful
    older = dict(jump.to_dict(), defaults={"guidance": 1.2, "steps": 20, "solver": "midpoint"})
    assert ModelCard.from_dict(older).defaults["solver"] == "midpoint"  # as it was written


def test_the_bundled_demo_weights_read_into_a_card():
    from napari_cellflux import load_model

    card = load_model(device="cpu").card
    assert card.preset == "fast" and card.crop_size == 64 and len(card.channels) == 3
    assert card.storage_dtype == "float16" and card.perturbations


def test_a_card_is_frozen_and_its_mappings_read_only():
    card = _card()
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        card.training_data["held_out"] = {}  # type: ignore[index]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(channels=("DNA", "Tubulin")), "2 channel names for a 3-channel"),
        (dict(kind="protein"), "compound' or 'gene"),
        (dict(norm_high=(1, 2)), "one low and one high value per channel"),
    ],
)
def test_an_inconsistent_card_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        _card(**changes)


def test_a_metadata_dict_with_a_wrong_crop_size_is_refused():
    meta = _card().to_dict()
    meta["crop_size"] = 48
    with pytest.raises(ValueError, match="crop_size 48"):
        ModelCard.from_dict(meta)
