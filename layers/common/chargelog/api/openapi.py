"""The API's OpenAPI document: Powertools' own, amended, rendered as stable JSON.

GET /openapi.json serves it (``chargelog.api.app``); ``make openapi`` writes it to docs/openapi.json
(``chargelog_cli.openapi``, outside the runtime package).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from chargelog.api import problems

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import Server


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
