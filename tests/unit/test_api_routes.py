"""The API function's routes (Powertools) and the template's ApiFunction events are the same set."""

from __future__ import annotations

from typing import Any

import api_handler

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def test_every_route_the_handler_serves_is_in_the_template_and_back(template: dict[str, Any]) -> None:
    schema = api_handler.app.get_openapi_schema()
    served = {
        (method.upper(), path)
        for path, item in (schema.paths or {}).items()
        for method in HTTP_METHODS
        if getattr(item, method, None) is not None
    }
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    declared = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in events.values()
        if event["Type"] == "Api"
    }
    assert served == declared
