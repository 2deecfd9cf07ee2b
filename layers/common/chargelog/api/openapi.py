"""The API's OpenAPI document, as committed in docs/openapi.json and served at GET /openapi.json.

``python -m chargelog.api.openapi`` (``make openapi``) rewrites docs/openapi.json from the code;
``--check`` only says whether it is current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import Server

from chargelog.api import problems

DOCUMENT_PATH = Path(__file__).resolve().parents[4] / "docs" / "openapi.json"


def amend(document: dict[str, Any], open_routes: frozenset[tuple[str, str]]) -> None:
    """What Powertools' document gets wrong or leaves out, put right in one place for every route.

    - Powertools drops a route's ``security=[]``, so the open routes are marked here.
    - An optional parameter is ``X | None`` in Python, which Powertools writes as "X or null"; a query string
      cannot hold a null (a client leaves the parameter out), so the parameter is just X.
    - The problems each operation can answer (see ``problems.document``).
    """
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if (method, path) in open_routes:
                operation["security"] = []
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter["schema"])
    problems.document(document, open_routes=open_routes)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if len(branches) != 1 or len(schema["anyOf"]) != 2:
        return schema
    return {**{key: value for key, value in schema.items() if key != "anyOf"}, **branches[0]}


def render(resolver: APIGatewayRestResolver, servers: list[Server] | None = None) -> str:
    """The document as stable JSON: sorted keys, two-space indent, a trailing newline."""
    document = resolver.get_openapi_schema(servers=servers).model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargelog.api.openapi", description=__doc__)
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    args = parser.parse_args(argv)

    from chargelog.api.app import app  # here, not at the top: the app imports this module

    document = render(app)
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != document:
            print(f"{args.output} is out of date: run `make openapi`.", file=sys.stderr)
            return 1
        return 0
    if current != document:
        args.output.write_text(document, encoding="utf-8")
        print(f"Wrote {args.output}.")
    else:
        print(f"{args.output} is up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
