"""The upload API (UploadApi: OpenAPI DefinitionBody, REQUEST authorizer, direct S3 integration) on 127.0.0.1.

It serves exactly what the template defines, the way API Gateway runs it:
- the path and method must be an operation of the DefinitionBody (else MISSING_AUTHENTICATION_TOKEN);
- a body is at most 10 MB (REQUEST_TOO_LARGE, before anything else runs);
- the operation's custom authorizer (a LocalFunction, the template's function named in ``authorizerUri``) gets the
  REQUEST authorizer event API Gateway sends; its policy must Allow this method ARN (else ACCESS_DENIED, the
  authorizer's context filling ``$context.authorizer.*``); an exception is UNAUTHORIZED ("Unauthorized") or
  AUTHORIZER_FAILURE;
- the ``aws`` integration's ``requestParameters`` are evaluated (``context.authorizer.*``, ``method.request.*``,
  ``'literals'``) into the S3 URI's path parameters and headers; the call is made as the integration's
  ``credentials`` role (its policy is checked: a PUT outside what it allows is S3's 403), against moto;
- S3's status selects the integration response (``selectionPattern`` keys, else ``default``): its status code,
  ``responseParameters`` headers and mapping template body.
Path parameters reach the authorizer as the client encoded them (API Gateway's REST APIs do not decode them).
Gateway responses come from the DefinitionBody's ``x-amazon-apigateway-gateway-responses``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from werkzeug.wrappers import Request, Response

from chargelog import aws
from chargelog_local.gateway import (
    API_GATEWAY_MAX_REQUEST_BYTES,
    compile_path,
    render_gateway_response,
    request_context,
)
from chargelog_local.lambdas import LocalFunction
from chargelog_local.provision import LocalStack
from chargelog_local.template import DefinedApi, Resolver, defined_apis

logger = logging.getLogger("chargelog_local.uploads")

ACCOUNT_ID = "123456789012"
_FUNCTION_IN_URI = re.compile(r"functions/(?P<arn>arn:[^/]+)/invocations")
_S3_PATH_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]*:s3:path/(?P<path>.+)$")


class IntegrationNotEmulated(ValueError):
    """The DefinitionBody uses an integration the local stack does not emulate."""


@dataclass(frozen=True)
class _Operation:
    path: str
    method: str
    pattern: re.Pattern[str]
    authorizer: LocalFunction | None
    integration: dict[str, Any]  # resolved
    role_statements: tuple[dict[str, Any], ...]  # the integration role's policy statements, resolved


def _authorizer_of(
    operation: dict[str, Any], api: DefinedApi, resolver: Resolver, functions: Mapping[str, LocalFunction]
) -> LocalFunction | None:
    for requirement in operation.get("security", []):
        for scheme_name in requirement:
            scheme = api.security_schemes.get(scheme_name, {})
            authorizer = scheme.get("x-amazon-apigateway-authorizer")
            if not authorizer:
                continue
            if str(authorizer.get("type", "")).lower() != "request":
                raise IntegrationNotEmulated(f"{scheme_name}: only REQUEST authorizers are emulated")
            uri = str(resolver.resolve(authorizer["authorizerUri"]))
            found = _FUNCTION_IN_URI.search(uri)
            if found is None:
                raise IntegrationNotEmulated(f"{scheme_name}: authorizerUri {uri} names no function")
            function_name = found["arn"].rsplit(":", 1)[-1]
            return functions[function_name]
    return None


def _role_statements(template: Mapping[str, Any], credentials: Any, resolver: Resolver) -> tuple[dict[str, Any], ...]:
    """The policy statements of the role an integration runs as (``credentials: !GetAtt Role.Arn``)."""
    if not (isinstance(credentials, dict) and "Fn::GetAtt" in credentials):
        return ()
    role = template["Resources"][credentials["Fn::GetAtt"][0]]
    statements: list[dict[str, Any]] = []
    for policy in role.get("Properties", {}).get("Policies", []):
        document = resolver.resolve(policy["PolicyDocument"])
        found = document["Statement"]
        statements.extend(found if isinstance(found, list) else [found])
    return tuple(statements)


def _allows(statements: Iterable[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether IAM statements (Allow/Deny, wildcards) let ``action`` on ``resource``."""

    def matches(statement: dict[str, Any]) -> bool:
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = resources if isinstance(resources, list) else [resources]
        return any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        )

    listed = list(statements)
    if any(s.get("Effect") == "Deny" and matches(s) for s in listed):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in listed)


def _policy_allows(policy: Any, method_arn: str) -> bool:
    """Whether an authorizer's policy document allows ``execute-api:Invoke`` on the method ARN."""
    if not isinstance(policy, dict):
        return False
    statements = policy.get("Statement", [])
    return _allows(statements if isinstance(statements, list) else [statements], "execute-api:Invoke", method_arn)


class LocalUploadGateway:
    """A WSGI application that plays API Gateway for one DefinitionBody API with S3 integrations."""

    def __init__(
        self,
        api: DefinedApi,
        template: Mapping[str, Any],
        resolver: Resolver,
        functions: Mapping[str, LocalFunction],
        stage: str,
        region: str,
    ) -> None:
        self.api = api
        self._stage = stage
        self._region = region
        operations = []
        for defined in api.operations:
            integration = defined.operation.get("x-amazon-apigateway-integration", {})
            if integration.get("type") != "aws" or ":s3:path/" not in str(resolver.resolve(integration.get("uri"))):
                raise IntegrationNotEmulated(f"{defined.method} {defined.path}: only aws S3 path integrations")
            operations.append(
                _Operation(
                    path=defined.path,
                    method=defined.method,
                    pattern=compile_path(defined.path),
                    authorizer=_authorizer_of(defined.operation, api, resolver, functions),
                    integration=resolver.resolve(integration),
                    role_statements=_role_statements(template, integration.get("credentials"), resolver),
                )
            )
        # Literal paths before parameterised ones, as API Gateway prefers the most specific match.
        self._operations = sorted(operations, key=lambda o: o.path.count("{"))

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response = self.handle(Request(environ))
        return response(environ, start_response)

    def gateway_error(
        self, response_type: str, message: str, authorizer_context: Mapping[str, Any] | None = None
    ) -> Response:
        return render_gateway_response(self.api.gateway_responses, response_type, message, authorizer_context)

    def handle(self, request: Request) -> Response:
        too_large = f"HTTP content length exceeded {API_GATEWAY_MAX_REQUEST_BYTES} bytes."
        if (request.content_length or 0) > API_GATEWAY_MAX_REQUEST_BYTES:
            return self.gateway_error("REQUEST_TOO_LARGE", too_large)
        body = request.stream.read(API_GATEWAY_MAX_REQUEST_BYTES + 1)
        if len(body) > API_GATEWAY_MAX_REQUEST_BYTES:
            return self.gateway_error("REQUEST_TOO_LARGE", too_large)
        # The path as sent (still percent-encoded): an encoded "/" stays inside its path parameter.
        raw_path = urlsplit(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path).path
        match = self._match(request.method, raw_path)
        if match is None:
            return self.gateway_error("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        operation, path_parameters = match
        context = request_context(request, operation.path, self._stage)
        context["path"] = raw_path
        authorizer_context: dict[str, Any] = {}
        if operation.authorizer is not None:
            method_arn = (
                f"arn:aws:execute-api:{self._region}:{ACCOUNT_ID}:local/{self._stage}/{request.method}{raw_path}"
            )
            event = self.authorizer_event(request, operation, raw_path, path_parameters, context, method_arn)
            try:
                result = operation.authorizer.invoke(event)
            except Exception as error:
                if str(error) == "Unauthorized":
                    return self.gateway_error("UNAUTHORIZED", "Unauthorized")
                logger.exception("%s raised", operation.authorizer.name)
                return self.gateway_error("AUTHORIZER_FAILURE", "Authorizer error")
            if not isinstance(result, dict) or "policyDocument" not in result:
                logger.error("Malformed authorizer response: %r", result)
                return self.gateway_error("AUTHORIZER_FAILURE", "Authorizer error")
            authorizer_context = dict(result.get("context") or {})
            if not _policy_allows(result["policyDocument"], method_arn):
                # The resource, not the path: the path carries the token.
                logger.info("%s %s -> denied: %s", request.method, operation.path, authorizer_context.get("reason"))
                return self.gateway_error(
                    "ACCESS_DENIED", "User is not authorized to access this resource", authorizer_context
                )
            authorizer_context["principalId"] = result.get("principalId")
        return self._integrate(request, body, operation, path_parameters, authorizer_context)

    # ------------------------------------------------------------------ pieces
    def _match(self, method: str, path: str) -> tuple[_Operation, dict[str, str]] | None:
        for operation in self._operations:
            if operation.method not in (method, "ANY"):
                continue
            found = operation.pattern.match(path)
            if found:
                return operation, found.groupdict()
        return None

    def authorizer_event(
        self,
        request: Request,
        operation: _Operation,
        raw_path: str,
        path_parameters: dict[str, str],
        context: dict[str, Any],
        method_arn: str,
    ) -> dict[str, Any]:
        """The event a REQUEST authorizer of a REST API receives."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        return {
            "type": "REQUEST",
            "methodArn": method_arn,
            "resource": operation.path,
            "path": raw_path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {key: values[-1] for key, values in request.args.lists()},
            "multiValueQueryStringParameters": {key: list(values) for key, values in request.args.lists()},
            "pathParameters": path_parameters,
            "stageVariables": {},
            "requestContext": context,
        }

    @staticmethod
    def _parameter_value(
        expression: str, request: Request, path_parameters: Mapping[str, str], authorizer: Mapping[str, Any]
    ) -> str | None:
        """The value of a request-parameter mapping expression; None when it has none (the parameter is left out)."""
        if expression.startswith("'") and expression.endswith("'"):
            return expression[1:-1]
        if expression.startswith("context.authorizer."):
            value = authorizer.get(expression.removeprefix("context.authorizer."))
            return None if value is None else str(value)
        if expression.startswith("method.request.header."):
            return request.headers.get(expression.removeprefix("method.request.header."))
        if expression.startswith("method.request.path."):
            return path_parameters.get(expression.removeprefix("method.request.path."))
        if expression.startswith("method.request.querystring."):
            return request.args.get(expression.removeprefix("method.request.querystring."))
        raise IntegrationNotEmulated(f"request parameter expression {expression!r}")

    def _integrate(
        self,
        request: Request,
        body: bytes,
        operation: _Operation,
        path_parameters: Mapping[str, str],
        authorizer: Mapping[str, Any],
    ) -> Response:
        integration = operation.integration
        path_values: dict[str, str] = {}
        headers: dict[str, str] = {}
        for target, expression in (integration.get("requestParameters") or {}).items():
            value = self._parameter_value(str(expression), request, path_parameters, authorizer)
            if value is None or value == "":
                continue
            if target.startswith("integration.request.path."):
                path_values[target.removeprefix("integration.request.path.")] = value
            elif target.startswith("integration.request.header."):
                headers[target.removeprefix("integration.request.header.").lower()] = value
        found = _S3_PATH_URI.match(str(integration["uri"]))
        if found is None or str(integration.get("httpMethod", "")).upper() != "PUT":
            raise IntegrationNotEmulated(f"integration {integration.get('uri')}: only S3 PutObject")
        s3_path = re.sub(r"\{([^}]+)\}", lambda m: path_values.get(m.group(1), ""), found["path"])
        bucket, _, key = s3_path.partition("/")
        status = self._put_object(bucket, key, body, headers, operation)
        return self._integration_response(integration, status)

    def _put_object(self, bucket: str, key: str, body: bytes, headers: Mapping[str, str], operation: _Operation) -> int:
        if not key:
            return 400
        if operation.role_statements and not _allows(
            operation.role_statements, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}"
        ):
            logger.warning("The integration role may not put %s", key)
            return 403
        put: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body}
        if "content-type" in headers:
            put["ContentType"] = headers["content-type"]
        metadata = {
            name.removeprefix("x-amz-meta-"): value for name, value in headers.items() if name.startswith("x-amz-meta-")
        }
        if metadata:
            put["Metadata"] = metadata
        try:
            response = self._store(put)
        except ClientError as error:
            logger.warning("S3 PutObject failed: %s", error)
            return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        logger.info("PUT s3://%s/%s (%d bytes)", bucket, key, len(body))
        return int(response["ResponseMetadata"]["HTTPStatusCode"])

    @staticmethod
    def _store(put: dict[str, Any]) -> Any:
        """PutObject, as API Gateway's integration does. moto's server (unlike S3) parses a PUT whose Content-Type is
        a form and keeps only its file part, so such a body goes up as a one-part multipart upload instead (raw
        bytes, the same key, content type and metadata; S3 announces it as ObjectCreated too)."""
        s3 = aws.client("s3")
        media_type = str(put.get("ContentType", "")).split(";", 1)[0].strip().lower()
        if not (media_type.startswith("multipart/") or media_type == "application/x-www-form-urlencoded"):
            return s3.put_object(**put)
        body = put.pop("Body")
        upload = s3.create_multipart_upload(**put)
        part = s3.upload_part(
            Bucket=put["Bucket"], Key=put["Key"], UploadId=upload["UploadId"], PartNumber=1, Body=body
        )
        return s3.complete_multipart_upload(
            Bucket=put["Bucket"],
            Key=put["Key"],
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )

    @staticmethod
    def _integration_response(integration: Mapping[str, Any], status: int) -> Response:
        responses = integration.get("responses") or {}
        chosen = next(
            (
                spec
                for pattern, spec in responses.items()
                if pattern != "default" and re.fullmatch(pattern, str(status))
            ),
            responses.get("default"),
        )
        if chosen is None:  # API Gateway passes the status through when nothing maps it
            return Response(b"", status=status)
        templates = chosen.get("responseTemplates") or {}
        body = templates.get("application/json", next(iter(templates.values()), ""))
        response = Response(body, status=int(chosen["statusCode"]))
        for target, value in (chosen.get("responseParameters") or {}).items():
            if target.startswith("method.response.header.") and str(value).startswith("'"):
                response.headers[target.removeprefix("method.response.header.")] = str(value).strip("'")
        return response


def upload_gateways(
    template: Mapping[str, Any],
    stack: LocalStack,
    functions: Mapping[str, LocalFunction],
    stage: str,
) -> list[LocalUploadGateway]:
    """A local gateway for each API the template defines with a DefinitionBody, resolved against the local stack
    (functions by their logical ids; anything else the stack lacks, the API itself say, by a placeholder)."""
    base = stack.resolver(on_missing=lambda name: f"local-{name}")
    function_arns = {(name, "Arn"): f"arn:aws:lambda:{stack.region}:{ACCOUNT_ID}:function:{name}" for name in functions}
    resolver = Resolver(
        base.parameters, base.refs, {**base.attributes, **function_arns}, base.on_missing, base.conditions
    )
    return [
        LocalUploadGateway(api, template, resolver, functions, stage, stack.region) for api in defined_apis(template)
    ]
