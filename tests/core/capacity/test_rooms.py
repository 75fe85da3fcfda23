"""Room-first packing rules (pure)."""

from __future__ import annotations

import pytest

from hub_ext.core.capacity.model import SliceType
from hub_ext.core.capacity.rooms import (
    RoomOrder,
    RoomUse,
    assign_rooms,
    choose_room,
    parse_fill,
    room_use_table,
)

T = SliceType("1g.10gb")
ORDER = RoomOrder(("room-a", "room-b"), 90)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (RoomUse(40, 0, 40), RoomUse(40, 0, 40), "room-a"),
        (RoomUse(40, 35, 5), RoomUse(40, 0, 40), "room-a"),
        (RoomUse(40, 36, 4), RoomUse(40, 0, 40), "room-b"),  # 90 % reached
        (RoomUse(40, 36, 4), RoomUse(40, 36, 4), "room-a"),  # both at 90 %: fill in order
        (RoomUse(40, 40, 0), RoomUse(40, 39, 1), "room-b"),
        (RoomUse(0, 0, 0), RoomUse(40, 39, 1), "room-b"),  # room A's nodes are NotReady
        (RoomUse(40, 40, 0), RoomUse(40, 40, 0), None),
    ],
)
def test_choose_room(a: RoomUse, b: RoomUse, expected: str | None) -> None:
    assert choose_room(ORDER, {"room-a": a, "room-b": b}) == expected


def test_one_pass_counts_each_placement_before_the_next() -> None:
    use = {T: {"room-a": RoomUse(40, 0, 40), "room-b": RoomUse(40, 0, 40)}}
    rooms = assign_rooms(ORDER, use, [T] * 45)
    assert rooms.count("room-a") == 36 and rooms.count("room-b") == 9
    assert rooms[:36] == ("room-a",) * 36
    # a slice type no room offers gets no room: the scheduler decides
    assert assign_rooms(ORDER, use, [SliceType("2g.20gb")]) == (None,)


def test_in_flight_pods_count_as_used_in_their_room() -> None:
    table = room_use_table({"room-a": {T: (40, 30, 10)}}, {("room-a", T): 6})
    assert table[T]["room-a"] == RoomUse(40, 36, 4)
    assert choose_room(ORDER, {**table[T], "room-b": RoomUse(40, 0, 40)}) == "room-b"


@pytest.mark.parametrize(("text", "value"), [("90%", 90), (" 100 % ", 100), (75, 75)])
def test_parse_fill(text: str | int, value: int) -> None:
    assert parse_fill(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.9", "not a percentage"),
        ("ninety", "not a percentage"),
        ("0%", "between 1% and 100%"),
        ("120%", "between 1% and 100%"),
    ],
)
def test_bad_fill_levels_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fill(text)


def test_bad_room_orders_are_refused() -> None:
    with pytest.raises(ValueError, match="names no room"):
        RoomOrder(())
    with pytest.raises(ValueError, match="twice"):
        RoomOrder(("room-a", "room-a"))
