"""The spawn form: one radio choice per course profile the student may use, with live capacity."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class ProfileChoice:
    """What the form shows for one profile."""

    slug: str
    display_name: str
    description: str
    slice_type: str | None
    free: int
    total: int
    queued: int
    session: str = ""
    """The student's lab session running now, e.g. ``ml101-a lab session until 11:30``."""


def _capacity_line(choice: ProfileChoice) -> str:
    if choice.slice_type is None:
        return "CPU only (no GPU)"
    line = f"GPU slice {choice.slice_type}: {choice.free} of {choice.total} free"
    if choice.queued:
        line += f", {choice.queued} waiting"
    return line


def render_form(choices: list[ProfileChoice], selected: str = "") -> str:
    """HTML for JupyterHub's spawn page (inserted into its own form element)."""
    if not choices:
        return (
            '<p class="alert alert-warning">You are not a member of any course with a lab '
            "environment. Ask your lecturer to add you to the seminar group.</p>"
        )
    chosen = selected if any(c.slug == selected for c in choices) else choices[0].slug
    rows = []
    for c in choices:
        checked = " checked" if c.slug == chosen else ""
        session = (
            f'<div class="labhub-session"><strong>{escape(c.session)}</strong></div>'
            if c.session
            else ""
        )
        rows.append(
            '<label class="labhub-profile list-group-item">'
            f'<input type="radio" name="profile" value="{escape(c.slug)}"{checked}> '
            f"<strong>{escape(c.display_name)}</strong>"
            f"<div>{escape(c.description)}</div>"
            f'<div class="labhub-capacity">{escape(_capacity_line(c))}</div>'
            f"{session}</label>"
        )
    return '<div class="labhub-profiles list-group">' + "".join(rows) + "</div>"
