"""Rebuild ``twilio_api_v2010.subset.json`` from Twilio's full OpenAPI description.

    python tests/data/make_oai_subset.py path/to/twilio_api_v2010.json

The project carries only the paths its tests and simulator check against, with every
component those paths reference (followed transitively), so that a clone needs
nothing beside it. The selection is the list below; add a path here, never by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PATHS = (
    "/2010-04-01/Accounts/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json",
    "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Events.json",
    "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
    "/2010-04-01/Accounts/{AccountSid}/OutgoingCallerIds.json",
)
OUT = Path(__file__).with_name("twilio_api_v2010.subset.json")


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {path: spec["paths"][path] for path in PATHS}
    components: dict[str, dict[str, Any]] = {}
    todo = _refs(paths)
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)  # "#/components/<kind>/<name>"
        node = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = node
        todo |= _refs(node)
    components["securitySchemes"] = spec["components"]["securitySchemes"]
    return {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "servers": spec.get("servers", []),
        "security": spec.get("security", []),
        "x-subset-of": "twilio/twilio-oai spec/json/twilio_api_v2010.json",
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in
                       sorted(components.items())},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    OUT.write_text(json.dumps(subset(spec), indent=1, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
