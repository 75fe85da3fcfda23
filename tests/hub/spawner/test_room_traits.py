"""The spawner's room-first packing settings: checked when set, turned into a RoomOrder."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from hub_ext.core.capacity.rooms import RoomOrder
from hub_ext.hub.spawner.rooms import RoomTraits
from hub_ext.hub.spawner.spawner import LabKubeSpawner


def test_the_spawner_has_the_room_traits() -> None:
    traits = LabKubeSpawner.class_traits(config=True)
    assert {"room_order", "fill_up_to"} <= set(traits)
    assert traits["fill_up_to"].default_value == "90%"


def test_rooms_from_traits() -> None:
    settings = RoomTraits()
    assert settings._rooms() is None  # no room order: the scheduler spreads as before
    settings.room_order = ["room-a", "room-b"]
    settings.fill_up_to = "85%"
    assert settings._rooms() == RoomOrder(("room-a", "room-b"), 85)


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("fill_up_to", "0.9", "fill_up_to: fillUpTo '0.9' is not a percentage"),
        ("fill_up_to", "150%", "between 1% and 100%"),
        ("room_order", ["room-a", "room-a"], "room_order: roomOrder names a room twice"),
    ],
)
def test_bad_settings_are_refused_with_the_trait_name(
    trait: str, value: object, message: str
) -> None:
    settings = RoomTraits()
    with pytest.raises(TraitError, match=message):
        setattr(settings, trait, value)
    assert settings._rooms() is None  # nothing was half-set
