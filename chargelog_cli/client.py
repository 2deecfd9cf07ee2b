"""A small client for the chargelog API, for the command line (local or deployed stack)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The API answered with an error; the message is one line for the terminal."""


class ChargelogClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"x-api-key": api_key, "accept": "application/json"},
            timeout=timeout,
        )

    def __enter__(self) -> ChargelogClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def send(self, method: str, path: str, accept: str | None = None, **kwargs: Any) -> httpx.Response:
        """The API's answer; raises ApiError, with the problem's title and detail, when it is an error."""
        if accept:
            kwargs["headers"] = {**kwargs.get("headers", {}), "accept": accept}
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(f"cannot reach {self._http.base_url}: {error}") from error
        if response.is_error:
            raise ApiError(_describe_error(response))
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def list_sources(self, vendor: str | None = None) -> list[dict[str, Any]]:
        params = {"vendor": vendor} if vendor else None
        return list(self.request("GET", "/sources", params=params)["sources"])

    def add_source(self, vendor: str, source_id: str, name: str | None, enabled: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"vendor": vendor, "source_id": source_id, "enabled": enabled}
        if name:
            body["name"] = name
        return dict(self.request("POST", "/sources", json=body))

    def discover_sources(self, vendor: str, register: bool) -> dict[str, Any]:
        return dict(self.request("POST", "/sources/discover", json={"vendor": vendor, "register": register}))

    def update_source(self, vendor: str, source_id: str, **changes: Any) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/sources/{vendor}/{source_id}", json=changes))

    def remove_source(self, vendor: str, source_id: str) -> None:
        self.request("DELETE", f"/sources/{vendor}/{source_id}")


def _describe_error(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200].strip()}"
    if not isinstance(problem, dict):
        return f"HTTP {response.status_code}"
    detail = problem.get("detail") or problem.get("message") or ""
    errors = problem.get("errors") or []
    if errors:
        detail += " " + "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in errors)
    return f"HTTP {response.status_code} {problem.get('title', '')}: {detail}".strip()
