"""The filters of the console's lists, as an address (or a form carrying one) holds them."""

from __future__ import annotations

from oco.domain.presence import Presence
from oco.services.computers import ComputerQuery
from oco.web.lists import ListState

MATCH = "match_"
"""The prefix under which a form carries a list's filter along (an action on all that match)."""


def computer_query(state: ListState, prefix: str = "") -> ComputerQuery:
    """The computer filter the address (or a form carrying it, under `prefix`) holds."""
    presence = state.get(f"{prefix}presence")
    return ComputerQuery(
        search=state.get(f"{prefix}q"),
        presence=Presence.from_text(presence, field="presence") if presence else None,
        os=state.get(f"{prefix}os"),
        group_id=state.integer(f"{prefix}group"),
        package_id=state.integer(f"{prefix}package"),
        software=state.get(f"{prefix}software"),
        software_version=state.get(f"{prefix}software_version"),
    )
