"""Where a hub's CPU goes during the burst: a cProfile written by :mod:`hub_probe`, per spawn.

Three views: the code that owns the time (``hub_ext``, ``jupyterhub``, ``kubespawner``,
``sqlalchemy``, ``ldap3``, ``ssl``, ...: own time of its functions), the functions with the most
own time, and JupyterHub's own costs that every stack pays (token hashing, database commits,
template rendering: time including callees).
"""

from __future__ import annotations

import pstats
import re
from collections import defaultdict
from pathlib import Path

_SITE = re.compile(r"(?:site-packages|dist-packages)/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"/lib/python3\.\d+/([A-Za-z0-9_]+)")
# JupyterHub's own costs, measured by time including callees
FLOOR_COSTS = (
    ("token hashing (jupyterhub.utils.hash_token)", ("utils.py", "hash_token")),
    ("database commits (Session.commit)", ("session.py", "commit")),
    ("page templates (render_template)", ("base.py", "render_template")),
    ("finding the user of a request (get_current_user)", ("base.py", "get_current_user")),
)


def area(filename: str, name: str) -> str:
    if filename in ("~", "<built-in>") or filename.startswith("<"):
        match = re.search(r"method '\w+' of '([A-Za-z0-9_]+)", name) or re.search(
            r"built-in method ([A-Za-z0-9_]+)", name
        )
        return f"builtins ({match.group(1).lstrip('_')})" if match else "builtins"
    if "/hub_ext/" in filename:
        return "hub_ext (LabHub)"
    if "/tests/bench/" in filename:
        return "benchmark probe"
    site = _SITE.search(filename)
    if site:
        return site.group(1)
    std = _STDLIB.search(filename)
    return f"stdlib {std.group(1)}" if std else filename


def summary(label: str, pattern: str, path: Path, spawns: int, top: int = 12) -> str:
    """The top costs of one profiled hub, per spawn (per student where nobody spawns)."""
    stats = pstats.Stats(str(path))
    everything = stats.stats  # type: ignore[attr-defined]
    # waiting in the event loop's selector is idle time, not a cost
    idle = sum(v[2] for k, v in everything.items() if "select.epoll" in k[2])
    raw = {k: v for k, v in everything.items() if "select.epoll" not in k[2]}
    per = max(spawns, 1)
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    by_area: dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _nc, tt, _ct, _callers) in raw.items():
        by_area[area(filename, name)] += tt
    lines = [
        f"\n== profile of the {label} hub, {pattern}: {total:.2f} s in the hub's main thread, "
        f"{total / per * 1000:.1f} ms per student ({spawns} students; {idle:.2f} s idle in "
        "the selector left out)",
        "  by owner (own time per student):",
    ]
    for name, tt in sorted(by_area.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"    {tt / per * 1000:8.2f} ms  {tt / total * 100:5.1f} %  {name}")
    lines.append("  top functions (own time per student):")
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, name), (_cc, nc, tt, _ct, _callers) in ranked:
        where = f"{area(filename, name)}: {Path(filename).name}:{line} {name}"
        lines.append(f"    {tt / per * 1000:8.2f} ms  {nc / per:8.1f} calls  {where[:110]}")
    lines.append("  JupyterHub's own costs (time including callees, per student):")
    for title, *keys in FLOOR_COSTS:
        cum = sum(
            ct
            for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
            if any(filename.endswith(f) and name == n for f, n in keys)
            and ("jupyterhub" in filename or "sqlalchemy" in filename)
        )
        lines.append(f"    {cum / per * 1000:8.2f} ms  {title}")
    return "\n".join(lines)
