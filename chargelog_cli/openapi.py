"""Writes the API's OpenAPI document to docs/openapi.json, where the repository keeps it.

``python -m chargelog_cli.openapi`` (``make openapi``) rewrites docs/openapi.json from the code;
``--check`` only says whether it is current. The document itself is the API's (``chargelog.api.openapi``): the same
one GET /openapi.json serves. This writer stays out of the runtime package, as docs/ is not in the Lambda layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chargelog.api.openapi import render

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"

__all__ = ["DOCUMENT_PATH", "main", "render"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargelog_cli.openapi", description=__doc__)
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is out of date")
    args = parser.parse_args(argv)

    from chargelog.api.app import app  # the whole API, only when the document is asked for

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
