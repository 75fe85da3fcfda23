"""The spawner's room-first packing settings (``room_order``, ``fill_up_to``), checked when set.

See :mod:`hub_ext.core.capacity.rooms` for the rule; the admission controller applies it.
"""

from __future__ import annotations

from typing import Any

from traitlets import HasTraits, List, TraitError, Unicode, validate

from hub_ext.core.capacity.rooms import RoomOrder, parse_fill


class RoomTraits(HasTraits):  # type: ignore[misc]
    """Mixed into LabKubeSpawner: configure as ``c.LabKubeSpawner.room_order``."""

    room_order = List(
        Unicode(),
        config=True,
        help="""Server rooms (node topology.kubernetes.io/zone values) in the order they are
        filled, e.g. ["room-a", "room-b"]: each admitted server gets a required node affinity for
        the first room whose slice use is below fill_up_to (room B stays a warm standby). Rooms
        whose nodes are NotReady offer nothing and are skipped; when every room is above the
        level, the first room with a free slice is used. Empty: no room is asked for.""",
    )
    fill_up_to = Unicode(
        "90%",
        config=True,
        help="""How full a room in room_order gets (share of its slices of the admitted type in
        use) before the next room is used, as a percentage such as "90%".""",
    )

    @validate("fill_up_to")
    def _check_fill_up_to(self, proposal: dict[str, Any]) -> str:
        try:
            parse_fill(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"LabKubeSpawner.fill_up_to: {exc}") from exc
        return str(proposal["value"])

    @validate("room_order")
    def _check_room_order(self, proposal: dict[str, Any]) -> list[str]:
        rooms = list(proposal["value"])
        if rooms:
            try:
                RoomOrder(tuple(rooms))
            except ValueError as exc:
                raise TraitError(f"LabKubeSpawner.room_order: {exc}") from exc
        return rooms

    def _rooms(self) -> RoomOrder | None:
        if not self.room_order:
            return None
        return RoomOrder(tuple(self.room_order), parse_fill(self.fill_up_to))
