"""Reads template.yaml for the local stack: resources, functions, routes and schedules.

The local stack builds everything from the template's own definitions, so it cannot drift from what
`sam deploy` creates. This module parses the YAML (with CloudFormation's short-form tags) and resolves
the intrinsic functions the template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::Join) against the local
stack's physical resources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns `!Ref x` into `{"Ref": "x"}` and `!Sub s` into `{"Fn::Sub": s}`."""


def _construct_intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, _CfnLoader)  # noqa: S506 - a SafeLoader subclass


class UnresolvableError(ValueError):
    pass


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass
class Resolver:
    """Resolves intrinsic functions given parameter values and the local physical resources."""

    parameters: Mapping[str, Any]
    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    on_missing: Callable[[str], str] | None = None
    conditions: Mapping[str, Any] = field(default_factory=dict)  # the template's Conditions, unresolved

    def condition(self, name: str) -> bool:
        try:
            return self._truth(self.conditions[name])
        except KeyError:
            raise UnresolvableError(f"Condition {name} is not in the template") from None

    def _truth(self, value: Any) -> bool:
        """A condition expression: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition."""
        ((key, argument),) = value.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return bool(str(left) == str(right))
        if key == "Fn::Not":
            return not self._truth(argument[0])
        if key == "Fn::And":
            return all(self._truth(item) for item in argument)
        if key == "Fn::Or":
            return any(self._truth(item) for item in argument)
        if key == "Condition":
            return self.condition(argument)
        raise UnresolvableError(f"Condition function {key} is not known to the local stack")

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return str(self.parameters[name])
        if name in self.refs:
            return self.refs[name]
        if self.on_missing is not None:
            return self.on_missing(name)
        raise UnresolvableError(f"Ref {name} is not known to the local stack")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.attributes[(name, attribute)]
        except KeyError:
            if self.on_missing is not None:
                return self.on_missing(f"{name}.{attribute}")
            raise UnresolvableError(f"Fn::GetAtt {name}.{attribute} is not known to the local stack") from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                return self.get_att(*argument)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(self.resolve(item)) for item in items)
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {name: self.resolve(item) for name, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, text)


# An SQS event source without ScalingConfig.MaximumConcurrency: Lambda scales its pollers to hundreds of concurrent
# invocations; the local stack, one process on one machine, runs this many.
DEFAULT_SQS_CONCURRENCY = 5


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    return {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}


@dataclass(frozen=True)
class ApiRoute:
    function: str
    path: str  # API Gateway resource path, e.g. /sources/{vendor}/{source_id}
    method: str  # upper case, or ANY
    api_key_required: bool


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str  # module.function
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, Any]  # unresolved values
    routes: tuple[ApiRoute, ...]
    schedules: tuple[str, ...]  # logical ids of Schedule events
    queues: tuple[tuple[Any, int, bool], ...]  # (unresolved queue arn, batch size, reports failures)
    # Each SQS event source's concurrency, in the order of ``queues``: its ScalingConfig.MaximumConcurrency, else
    # DEFAULT_SQS_CONCURRENCY (missing entries too).
    queue_concurrency: tuple[int, ...] = ()

    def concurrency_of(self, queue: int) -> int:
        """How many invocations the ``queue``-th SQS event source runs at once."""
        if queue < len(self.queue_concurrency):
            return self.queue_concurrency[queue]
        return DEFAULT_SQS_CONCURRENCY

    @property
    def max_containers(self) -> int:
        """Execution environments the local stack may run for the function at once: as many as its SQS event sources
        may invoke it concurrently, and one more for everything else (API requests, schedules, direct invocations)."""
        return 1 + sum(self.concurrency_of(queue) for queue in range(len(self.queues)))


def functions(template: Mapping[str, Any]) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function with its Globals applied."""
    globals_ = template.get("Globals", {}).get("Function", {})
    api_auth = {
        name: resource.get("Properties", {}).get("Auth", {}).get("ApiKeyRequired", False)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Api"
    }
    specs = []
    parameters = parameter_defaults(template)
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**globals_, **resource["Properties"]}
        environment = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **resource["Properties"].get("Environment", {}).get("Variables", {}),
        }
        routes, schedules, queues, concurrency = [], [], [], []
        for event_name, event in props.get("Events", {}).items():
            event_props = event.get("Properties", {})
            if event["Type"] == "Api":
                api = event_props.get("RestApiId", {}).get("Ref")
                default_key = api_auth.get(api, False)
                key_required = event_props.get("Auth", {}).get("ApiKeyRequired", default_key)
                method = event_props["Method"].upper()
                routes.append(ApiRoute(name, event_props["Path"], method, bool(key_required)))
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                schedules.append(event_name)
            elif event["Type"] == "SQS":
                reports = "ReportBatchItemFailures" in event_props.get("FunctionResponseTypes", [])
                queues.append((event_props["Queue"], int(event_props.get("BatchSize", 10)), reports))
                # A literal cap, or a parameter's default (`!Ref VendorWorkerConcurrency`); another intrinsic cannot
                # be known before the stack is resolved: Lambda's own default then.
                scaling = event_props.get("ScalingConfig", {}).get("MaximumConcurrency")
                if isinstance(scaling, dict) and set(scaling) == {"Ref"}:
                    scaling = parameters.get(scaling["Ref"])
                concurrency.append(int(scaling) if isinstance(scaling, int | str) else DEFAULT_SQS_CONCURRENCY)
        specs.append(
            FunctionSpec(
                logical_id=name,
                code_dir=REPO_ROOT / props["CodeUri"],
                handler=props["Handler"],
                timeout_seconds=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                environment=environment,
                routes=tuple(routes),
                schedules=tuple(schedules),
                queues=tuple(queues),
                queue_concurrency=tuple(concurrency),
            )
        )
    return specs


def _is_defined_api(resource: Mapping[str, Any]) -> bool:
    return resource["Type"] == "AWS::Serverless::Api" and "DefinitionBody" in resource.get("Properties", {})


def _gateway_responses(responses: Mapping[str, Any], status_key: str, templates_key: str) -> dict[str, Any]:
    return {
        kind: (spec.get(status_key), spec.get(templates_key, {}).get("application/json", ""))
        for kind, spec in responses.items()
    }


def gateway_responses(template: Mapping[str, Any]) -> dict[str, tuple[int | None, str]]:
    """API Gateway's own error responses of the main API: response type -> (status, JSON body template)."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Api" and not _is_defined_api(resource):
            responses = resource.get("Properties", {}).get("GatewayResponses", {})
            return _gateway_responses(responses, "StatusCode", "ResponseTemplates")
    return {}


def binary_media_types(template: Mapping[str, Any]) -> list[str]:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Api" and not _is_defined_api(resource):
            types = resource.get("Properties", {}).get("BinaryMediaTypes", [])
            return [t.replace("~1", "/") for t in types]
    return []


@dataclass(frozen=True)
class DefinedOperation:
    """One method of an API defined by its OpenAPI ``DefinitionBody`` (unresolved: intrinsics left in)."""

    path: str
    method: str  # upper case
    operation: dict[str, Any]


@dataclass(frozen=True)
class DefinedApi:
    """An AWS::Serverless::Api with an OpenAPI (Swagger 2 or OpenAPI 3) ``DefinitionBody``."""

    logical_id: str
    operations: tuple[DefinedOperation, ...]
    security_schemes: dict[str, Any]
    gateway_responses: dict[str, tuple[int | None, str]]
    binary_media_types: list[str]


_HTTP_METHODS = frozenset(
    {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}
)


def defined_apis(template: Mapping[str, Any]) -> list[DefinedApi]:
    apis = []
    for name, resource in template["Resources"].items():
        if not _is_defined_api(resource):
            continue
        body = resource["Properties"]["DefinitionBody"]
        operations = tuple(
            DefinedOperation(path, "ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), operation)
            for path, methods in body.get("paths", {}).items()
            for method, operation in methods.items()
            if method in _HTTP_METHODS
        )
        schemes = body.get("securityDefinitions") or body.get("components", {}).get("securitySchemes", {})
        apis.append(
            DefinedApi(
                logical_id=name,
                operations=operations,
                security_schemes=dict(schemes),
                gateway_responses=_gateway_responses(
                    body.get("x-amazon-apigateway-gateway-responses", {}), "statusCode", "responseTemplates"
                ),
                binary_media_types=list(body.get("x-amazon-apigateway-binary-media-types", [])),
            )
        )
    return apis
