"""The web viewer's static files (``chargelog/ui/``) at ``/ui/``: HTML, CSS and ES modules, no data, so no key.

The page asks for the API key itself and sends it with every data call. Only the files shipped in ``chargelog/ui``
are served (a fixed table read once: no path from the request reaches the file system), with their content
type, a short cache lifetime and a Content-Security-Policy that lets the page load nothing but its own files and
talk to nothing but its own API.
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from chargelog.api.problems import problem

router = Router()

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=60",
}


def _content_type(path: Path) -> str:
    found = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{found}; charset=utf-8" if found.startswith("text/") and "charset" not in found else found


@functools.cache
def _files() -> dict[str, tuple[bytes, str]]:
    """Every file under chargelog/ui by its path below /ui/: read on the first request for one, not at import
    (the API function's cold start serves data routes, which never need them)."""
    files = {
        path.relative_to(UI_DIR).as_posix(): (path.read_bytes(), _content_type(path))
        for path in sorted(UI_DIR.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    }
    return files


def _serve(name: str) -> Response[bytes]:
    found = _files().get(name)
    if found is None:
        return problem(404, f"The viewer has no file {name!r}.")
    body, content_type = found
    return Response(200, content_type=content_type, body=body, headers=dict(SECURITY_HEADERS), compress=True)


@router.get("/ui", include_in_schema=False)
def ui_root() -> Response[str]:
    # /ui and /ui/ (API Gateway and Powertools do not tell them apart) -> /ui/index.html, so the page's relative
    # addresses (style.css, ../ for the API) resolve the same on an execute-api URL (/Prod/ui/) and locally.
    # The request's full path (with the stage on an execute-api URL, the base path mapping on a custom domain).
    event = router.current_event
    asked = (event.request_context.path if isinstance(event, APIGatewayProxyEvent) else "") or "/ui"
    return Response(302, content_type="text/plain", body="", headers={"Location": asked.rstrip("/") + "/index.html"})


@router.get("/ui/<name>", include_in_schema=False)
def ui_file(name: str) -> Response[bytes]:
    return _serve(name)


@router.get("/ui/vendor/<package>/<name>", include_in_schema=False)
def ui_vendored_file(package: str, name: str) -> Response[bytes]:
    return _serve(f"vendor/{package}/{name}")
