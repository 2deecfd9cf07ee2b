"""The API's OpenAPI document, as committed in docs/openapi.json and served at GET /openapi.json.

``python -m chargelog.api.openapi`` (``make openapi``) rewrites docs/openapi.json from the code;
``--check`` only says whether it is current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import Server

DOCUMENT_PATH = Path(__file__).resolve().parents[4] / "docs" / "openapi.json"


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
