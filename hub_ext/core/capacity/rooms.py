"""Room-first packing: which server room an admitted server goes to.

With a room order ``(room-a, room-b)`` and a fill level of 90 %, every admitted server goes to the
first room whose use of that slice type is below 90 % of the room's slices, so that room B stays a
warm standby until room A is loaded. A room whose nodes are lost (NotReady) offers no slices and
is skipped; when every room is at or above the fill level, the first room with a free slice takes
the server (the fill level is a preference, never a reason to queue). Rooms are the nodes'
``topology.kubernetes.io/zone`` labels.

One decision pass admits several servers; :func:`assign_rooms` places them one after another and
counts each placement before the next, so one pass cannot overfill a room.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub_ext.core.capacity.model import SliceType

_PERCENT = re.compile(r"^\s*(\d{1,3})\s*%\s*$")


@dataclass(frozen=True)
class RoomOrder:
    """The rooms in the order they are filled, and how full a room gets before the next."""

    rooms: tuple[str, ...]
    fill_percent: int = 90

    def __post_init__(self) -> None:
        if not self.rooms:
            raise ValueError("roomOrder names no room; give at least one zone, e.g. [room-a]")
        if len(set(self.rooms)) != len(self.rooms):
            raise ValueError(f"roomOrder names a room twice: {list(self.rooms)}")
        if any(not room for room in self.rooms):
            raise ValueError("roomOrder has an empty room name")
        if not 1 <= self.fill_percent <= 100:
            raise ValueError(f"fillUpTo must be between 1% and 100% (got {self.fill_percent}%)")


def parse_fill(text: str | int) -> int:
    """``"90%"`` (or the integer 90) as a percentage; anything else is a clear error."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _PERCENT.match(str(text))
        if not match:
            raise ValueError(f"fillUpTo {text!r} is not a percentage; write it as 90%")
        value = int(match.group(1))
    if not 1 <= value <= 100:
        raise ValueError(f"fillUpTo must be between 1% and 100% (got {value}%)")
    return value


@dataclass(frozen=True)
class RoomUse:
    """Slices of one type in one room: what Ready nodes offer, what is held, what is free."""

    capacity: int
    used: int
    free: int

    def below(self, fill_percent: int) -> bool:
        """Whether the room's use is below ``fill_percent`` of its slices."""
        return self.capacity > 0 and self.used * 100 < fill_percent * self.capacity

    def plus_one(self) -> RoomUse:
        return RoomUse(self.capacity, self.used + 1, max(0, self.free - 1))


UseByRoom = Mapping[str, RoomUse]


def choose_room(order: RoomOrder, use: UseByRoom) -> str | None:
    """The room for one more server of a slice type whose use per room is ``use``.

    The first room below the fill level with a free slice; else the first room with a free slice;
    else None (no room in the order has one: the scheduler decides).
    """
    for room in order.rooms:
        room_use = use.get(room)
        if room_use is not None and room_use.free > 0 and room_use.below(order.fill_percent):
            return room
    for room in order.rooms:
        room_use = use.get(room)
        if room_use is not None and room_use.free > 0:
            return room
    return None


def assign_rooms(
    order: RoomOrder,
    use: Mapping[SliceType, UseByRoom],
    admitted: Sequence[SliceType],
) -> tuple[str | None, ...]:
    """Rooms for servers admitted in this order, each counted before the next is placed."""
    current = {t: dict(rooms) for t, rooms in use.items()}
    out: list[str | None] = []
    for slice_type in admitted:
        rooms = current.setdefault(slice_type, {})
        room = choose_room(order, rooms)
        if room is not None:
            rooms[room] = rooms[room].plus_one()
        out.append(room)
    return tuple(out)


def room_use_table(
    by_zone: Mapping[str, Mapping[SliceType, tuple[int, int, int]]],
    in_flight: Mapping[tuple[str, SliceType], int],
) -> dict[SliceType, dict[str, RoomUse]]:
    """Per slice type and room: (capacity, used, free) of the Ready nodes, plus the servers
    admitted to a room but not bound to a node yet (counted as used there)."""
    table: dict[SliceType, dict[str, RoomUse]] = {}
    for zone, counts in by_zone.items():
        for slice_type, (capacity, used, free) in counts.items():
            table.setdefault(slice_type, {})[zone] = RoomUse(capacity, used, free)
    for (zone, slice_type), count in in_flight.items():
        rooms = table.setdefault(slice_type, {})
        base = rooms.get(zone, RoomUse(0, 0, 0))
        rooms[zone] = RoomUse(base.capacity, base.used + count, max(0, base.free - count))
    return table
