#!/usr/bin/env python3
"""Generate helm/labhub/values.schema.json from helm/labhub/values.schema.yaml.

values.schema.yaml is the single source of the chart's values schema. YAML anchors and merge keys
are expanded, ``x-``-prefixed helper sections are dropped, and the result is written as JSON that
Helm reads at install, upgrade, lint and template time.

    python helm/tools/generate_schema.py          # write values.schema.json
    python helm/tools/generate_schema.py --check  # exit 1 when values.schema.json is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "labhub"
SOURCE = CHART / "values.schema.yaml"
TARGET = CHART / "values.schema.json"


def load_schema(path: Path = SOURCE) -> dict[str, Any]:
    """Read the YAML schema and return it with anchors expanded and ``x-`` sections removed."""
    with path.open(encoding="utf-8") as stream:
        data = yaml.safe_load(stream)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping at the top level")
    return {k: v for k, v in data.items() if not k.startswith("x-")}


def render(schema: dict[str, Any]) -> str:
    """The JSON text written to values.schema.json."""
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the JSON is current")
    args = parser.parse_args(argv)
    text = render(load_schema())
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(
                f"{TARGET} is out of date; run: python helm/tools/generate_schema.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
