"""Checks template.yaml, and the plain CloudFormation its SAM transform deploys, for what matters.

Most checks read the transformed template, since that is what CloudFormation really creates: SAM adds
the roles, the REST API's OpenAPI body, the usage plan and so on. The transform runs once, offline, with
samtranslator (the library behind `sam deploy`'s transform) in a subprocess: see `sam_python` below for
which interpreter runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from chargelog.vendors import VENDORS as CHARGELOG_VENDORS
from chargelog_local.template import TEMPLATE_PATH, load_template

VENDORS = frozenset({"plugchoice", "ocpplab", "chargepilot", "evenergy"})
RUNTIME = "python3.13"
ARCHITECTURE = "arm64"

# The only actions an Allow statement may grant on Resource "*": X-Ray's tracing calls, which take no
# resource. SAM's `Tracing: Active` grants them (today through the AWSXrayWriteOnlyAccess managed policy).
XRAY_ACTIONS_ON_ANY_RESOURCE = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    }
)
# Managed policies no role of this stack may carry: each grants far more than any function needs.
FORBIDDEN_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")

# Runs the SAM transform: reads the template as JSON on stdin, writes the CloudFormation as JSON.
# It runs offline: local code paths become fake S3 URIs (as cfn-lint did when it ran samtranslator), and
# the managed-policy-name lookup, which would list AWS managed policies from IAM, is stubbed out.
_TRANSFORM_SCRIPT = """
import json
import sys

from samtranslator.translator.transform import transform


class OfflinePolicyLoader:
    def load(self):
        return {}


template = json.load(sys.stdin)
for resource in template.get("Resources", {}).values():
    props = resource.get("Properties") or {}
    key = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}.get(
        resource.get("Type")
    )
    if key and isinstance(props.get(key), str) and not props[key].startswith("s3://"):
        props[key] = "s3://bucket/" + props[key]
json.dump(transform(template, {}, OfflinePolicyLoader(), passthrough_metadata=True), sys.stdout)
"""


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def _can_import_samtranslator(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import samtranslator.translator.transform"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.fixture(scope="module")
def sam_python() -> str:
    """An interpreter with samtranslator: $CHARGELOG_SAM_PYTHON, else the SAM CLI's venv, else this one.

    aws-sam-translator pins a pydantic range that clashes with the project's own pydantic pin, so it is not
    importable in the project's environment; the SAM CLI's venv (.venv-sam, made by `make test`) has it.
    """
    candidates = [
        os.environ.get("CHARGELOG_SAM_PYTHON"),
        str(TEMPLATE_PATH.parent / ".venv-sam" / "bin" / "python"),
        sys.executable,
    ]
    for python in candidates:
        if python and _can_import_samtranslator(python):
            return python
    pytest.fail(
        "No Python with samtranslator (pip package aws-sam-translator) found; tried "
        f"{[c for c in candidates if c]}. Run `make test` (it builds .venv-sam), "
        "or set CHARGELOG_SAM_PYTHON to a Python that has it."
    )


@pytest.fixture(scope="module")
def transformed(template: dict[str, Any], sam_python: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sam_python, "-c", _TRANSFORM_SCRIPT],
        input=json.dumps(template),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"SAM transform failed:\n{result.stderr}"
    output = json.loads(result.stdout)
    assert "Transform" not in output
    return output


# ---------------------------------------------------------------------------------------------- helpers


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def _props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties") or {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rule: maps merge key by key, lists concatenate, anything else the resource's wins."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _merge_globals(merged[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def _serverless_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every AWS::Serverless::Function's Properties with Globals.Function applied."""
    globals_ = template.get("Globals", {}).get("Function", {})
    return {
        name: _merge_globals(globals_, _props(resource))
        for name, resource in _resources(template, "AWS::Serverless::Function").items()
    }


def _target(value: Any) -> str | None:
    """The logical id a Ref / Fn::GetAtt (either form) / one-variable Fn::Sub refers to, else None."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((key, argument),) = value.items()
    if key == "Ref" and isinstance(argument, str):
        return argument
    if key == "Fn::GetAtt":
        parts = argument.split(".", 1) if isinstance(argument, str) else argument
        return parts[0]
    if key == "Fn::Sub" and isinstance(argument, str) and argument.startswith("${"):
        return argument[2:].split("}", 1)[0].split(".", 1)[0]
    return None


def _parameter_value(template: dict[str, Any], value: Any) -> Any:
    """A literal, or the Default of the parameter it Refs."""
    name = value.get("Ref") if isinstance(value, dict) else None
    if name is not None and name in template.get("Parameters", {}):
        return template["Parameters"][name].get("Default")
    return value


def _boundaries(cfn: dict[str, Any]) -> set[str]:
    """Managed policies used only as permissions boundaries: ceilings that grant nothing themselves."""
    used = {
        str(boundary["Ref"])
        for resource in cfn["Resources"].values()
        if isinstance(boundary := _props(resource).get("PermissionsBoundary"), dict) and "Ref" in boundary
    }
    attached = {
        str(ref["Ref"])
        for resource in cfn["Resources"].values()
        for ref in _props(resource).get("ManagedPolicyArns", [])
        if isinstance(ref, dict) and "Ref" in ref
    }
    return used - attached


def _role_policies(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A role's inline policies; a conditional one (``Fn::If``, as SAM writes a policy under a condition) is each of
    its branches but ``AWS::NoValue``, so its statements are checked whichever way the condition goes."""
    for policy in props.get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            _, *branches = policy["Fn::If"]
            yield from (branch for branch in branches if branch != {"Ref": "AWS::NoValue"})
        else:
            yield policy


def _policy_documents(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, policy document) for every identity policy in a plain CloudFormation template (permissions
    boundaries, which grant nothing, are checked by their own test)."""
    boundaries = _boundaries(cfn)
    for name, resource in cfn["Resources"].items():
        props = _props(resource)
        if name in boundaries:
            continue
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for policy in _role_policies(props):
                yield f"{name}/{policy.get('PolicyName')}", policy["PolicyDocument"]
        elif resource["Type"] in (
            "AWS::IAM::Policy",
            "AWS::IAM::ManagedPolicy",
            "AWS::IAM::RolePolicy",
            "AWS::IAM::UserPolicy",
            "AWS::IAM::GroupPolicy",
        ):
            yield name, props["PolicyDocument"]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]


def _too_broad(statement: dict[str, Any]) -> str | None:
    """Why an Allow statement grants too much, or None if it does not."""
    if statement.get("Effect") != "Allow":
        return None
    if "NotAction" in statement or "NotResource" in statement:
        return "an Allow with NotAction/NotResource"
    actions = [a for a in _as_list(statement.get("Action", [])) if isinstance(a, str)]
    resources = _as_list(statement.get("Resource", []))
    if "*" in actions:
        return 'Action "*"'
    if "*" in resources:
        service_wide = [a for a in actions if a.endswith(":*")]
        if service_wide:
            return f'{service_wide} on Resource "*"'
        beyond_xray = sorted(set(actions) - XRAY_ACTIONS_ON_ANY_RESOURCE)
        if beyond_xray:
            return f'{beyond_xray} on Resource "*"'
    return None


def _covers_bucket(resources: list[Any], bucket: str) -> tuple[bool, bool]:
    """Whether a statement's Resource list covers (the bucket itself, every object in it)."""
    bucket_arns = [
        {"Fn::GetAtt": [bucket, "Arn"]},
        {"Fn::Sub": f"${{{bucket}.Arn}}"},
        {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{bucket}}}"},
    ]
    object_arns = [
        {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
        {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{{bucket}}}/*"},
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/*"]]},
    ]
    return (
        any(r in bucket_arns for r in resources) or "*" in resources,
        any(r in object_arns for r in resources) or "*" in resources,
    )


def _denies_insecure_transport(statement: dict[str, Any], bucket: str) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    if statement.get("Principal") not in ("*", {"AWS": "*"}):
        return False
    if not {"*", "s3:*"} & set(_as_list(statement.get("Action", []))):
        return False
    secure_transport = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
    if secure_transport not in ("false", False):
        return False
    return _covers_bucket(_as_list(statement.get("Resource", [])), bucket) == (True, True)


def _api_routes(template: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """(METHOD, path) -> whether an API key is required, from every function's Api events."""
    default_key_required = {
        name: bool(_props(api).get("Auth", {}).get("ApiKeyRequired", False))
        for name, api in _resources(template, "AWS::Serverless::Api").items()
    }
    routes: dict[tuple[str, str], bool] = {}
    for function, props in _serverless_functions(template).items():
        for event_name, event in props.get("Events", {}).items():
            if event["Type"] != "Api":
                continue
            event_props = event["Properties"]
            api = _target(event_props.get("RestApiId"))
            # An Api event without RestApiId lands on SAM's implicit API, which has no API key.
            default = default_key_required.get(api, False) if api else False
            required = event_props.get("Auth", {}).get("ApiKeyRequired", default)
            route = (event_props["Method"].upper(), event_props["Path"])
            assert route not in routes, f"{function}.{event_name}: route {route} is declared twice"
            routes[route] = bool(required)
    return routes


# ---------------------------------------------------------------------------------------------- functions


def test_every_function_is_python313_arm64_with_the_common_layer(template: dict[str, Any]) -> None:
    functions = _serverless_functions(template)
    assert functions, "template.yaml declares no AWS::Serverless::Function"
    wrong = {
        name: {k: props.get(k) for k in ("Runtime", "Architectures", "Layers")}
        for name, props in functions.items()
        if props.get("Runtime") != RUNTIME
        or props.get("Architectures") != [ARCHITECTURE]
        or {"Ref": "CommonLayer"} not in props.get("Layers", [])
    }
    assert wrong == {}


def test_every_deployed_lambda_is_python313_arm64_with_the_common_layer(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    common_layers = {
        name
        for name, layer in _resources(transformed, "AWS::Lambda::LayerVersion").items()
        if _props(layer).get("LayerName") == "CommonLayer"
    }
    assert len(common_layers) == 1, f"expected one CommonLayer LayerVersion, found {common_layers}"
    functions = _resources(transformed, "AWS::Lambda::Function")
    assert set(functions) >= set(_resources(template, "AWS::Serverless::Function"))
    wrong = {
        name: {k: _props(function).get(k) for k in ("Runtime", "Architectures", "Layers")}
        for name, function in functions.items()
        if _props(function).get("Runtime") != RUNTIME
        or _props(function).get("Architectures") != [ARCHITECTURE]
        or not common_layers & {_target(layer) for layer in _props(function).get("Layers", [])}
    }
    assert wrong == {}


def test_common_layer_is_built_for_python313_arm64(template: dict[str, Any]) -> None:
    layer = template["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer.get("Metadata", {}).get("BuildMethod") == RUNTIME
    assert layer.get("Metadata", {}).get("BuildArchitecture") == ARCHITECTURE
    assert _props(layer).get("ContentUri") == "layers/common/"
    assert _props(layer).get("CompatibleRuntimes") == [RUNTIME]
    assert _props(layer).get("CompatibleArchitectures") == [ARCHITECTURE]


# ---------------------------------------------------------------------------------------------- IAM


def test_no_iam_statement_allows_everything_or_any_action_on_every_resource(
    transformed: dict[str, Any],
) -> None:
    documents = list(_policy_documents(transformed))
    assert documents, "the transformed template has no IAM policies at all: did the transform run?"
    offending = [
        (where, reason, statement)
        for where, document in documents
        for statement in _statements(document)
        if (reason := _too_broad(statement)) is not None
    ]
    assert offending == []


def test_the_too_broad_check_itself_catches_wildcards() -> None:
    def allow(action: Any, resource: Any) -> dict[str, Any]:
        return {"Effect": "Allow", "Action": action, "Resource": resource}

    assert _too_broad(allow("*", "arn:aws:s3:::b")) is not None
    assert _too_broad(allow("s3:*", "*")) is not None
    assert _too_broad(allow(["xray:PutTraceSegments", "s3:GetObject"], ["*"])) is not None
    assert _too_broad({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}) is not None
    assert _too_broad(allow(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")) is None
    assert _too_broad(allow("s3:*", "arn:aws:s3:::b/*")) is None
    assert _too_broad({"Effect": "Deny", "Action": "*", "Resource": "*"}) is None


def test_no_role_has_an_admin_managed_policy(transformed: dict[str, Any]) -> None:
    holders = _resources(transformed, "AWS::IAM::Role") | _resources(transformed, "AWS::IAM::User")
    holders |= _resources(transformed, "AWS::IAM::Group")
    assert _resources(transformed, "AWS::IAM::Role"), "the transformed template has no IAM roles"
    offending = [
        (name, arn)
        for name, holder in holders.items()
        for arn in _props(holder).get("ManagedPolicyArns", [])
        if any(json.dumps(arn).endswith(f'policy/{forbidden}"') for forbidden in FORBIDDEN_MANAGED_POLICIES)
    ]
    assert offending == []


# ---------------------------------------------------------------------------------------------- S3


def test_every_bucket_blocks_public_access_is_encrypted_and_expires(transformed: dict[str, Any]) -> None:
    buckets = _resources(transformed, "AWS::S3::Bucket")
    assert buckets, "no AWS::S3::Bucket in the template"
    problems = []
    for name, bucket in buckets.items():
        props = _props(bucket)
        block = props.get("PublicAccessBlockConfiguration", {})
        flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        if any(block.get(flag) is not True for flag in flags):
            problems.append((name, "PublicAccessBlockConfiguration", block))
        encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = [rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in encryption]
        if not algorithms or not all(algorithms):
            problems.append((name, "BucketEncryption", props.get("BucketEncryption")))
        rules = props.get("LifecycleConfiguration", {}).get("Rules", [])
        if not any(rule.get("Status") == "Enabled" for rule in rules):
            problems.append((name, "LifecycleConfiguration", props.get("LifecycleConfiguration")))
    assert problems == []


def test_every_bucket_policy_denies_insecure_transport(transformed: dict[str, Any]) -> None:
    buckets = _resources(transformed, "AWS::S3::Bucket")
    assert buckets, "no AWS::S3::Bucket in the template"
    policies = _resources(transformed, "AWS::S3::BucketPolicy")
    unprotected = []
    for bucket in buckets:
        statements = [
            statement
            for policy in policies.values()
            if _target(_props(policy).get("Bucket")) == bucket
            for statement in _statements(_props(policy).get("PolicyDocument", {}))
        ]
        if not any(_denies_insecure_transport(statement, bucket) for statement in statements):
            unprotected.append((bucket, statements))
    assert unprotected == []


# ---------------------------------------------------------------------------------------------- DynamoDB


def test_table_is_on_demand_recoverable_encrypted_and_expires_items(transformed: dict[str, Any]) -> None:
    tables = _resources(transformed, "AWS::DynamoDB::Table")
    assert set(tables) == {"Table"}
    for name, table in tables.items():
        props = _props(table)
        assert props.get("BillingMode") == "PAY_PER_REQUEST", name
        recovery = props.get("PointInTimeRecoverySpecification", {})
        assert recovery.get("PointInTimeRecoveryEnabled") is True, name
        assert props.get("SSESpecification", {}).get("SSEEnabled") is True, name
        ttl = props.get("TimeToLiveSpecification", {})
        assert ttl.get("Enabled") is True, name
        assert ttl.get("AttributeName"), name
        assert table.get("DeletionPolicy") == "Retain", name


# ---------------------------------------------------------------------------------------------- SQS


@pytest.mark.parametrize("vendor", ["plugchoice", "ocpplab", "chargepilot", "evenergy"])
def test_each_vendor_queue_has_a_dead_letter_queue_and_outlasts_its_worker(
    template: dict[str, Any], vendor: str
) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    variable = f"CHARGELOG_{vendor.upper()}_QUEUE_URL"
    work_queue = _target(variables[variable])
    assert work_queue in queues, f"{variable} refers to {work_queue}, not a queue"
    consumers = [
        (name, props, event["Properties"])
        for name, props in _serverless_functions(template).items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS" and _target(event["Properties"].get("Queue")) == work_queue
    ]
    assert [name for name, _, _ in consumers] == ["WorkerFunction"]
    # The per-vendor cap on concurrent workers, so a vendor's rate limit holds however many sources it has.
    (_, _, event) = consumers[0]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "VendorWorkerConcurrency"}
    assert variables["CHARGELOG_WORKER_CONCURRENCY"] == {"Ref": "VendorWorkerConcurrency"}  # each paces at its share
    assert template["Parameters"]["VendorWorkerConcurrency"]["MinValue"] == 2  # the least SQS allows
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    queue = _props(queues[work_queue])
    redrive = queue.get("RedrivePolicy", {})
    dead_letter = _target(redrive.get("deadLetterTargetArn"))
    assert dead_letter in queues, redrive
    assert dead_letter != work_queue, redrive
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter, "Arn"]}
    assert variables["CHARGELOG_DEAD_LETTER_QUEUE_URL"] == {"Ref": dead_letter}
    assert redrive["maxReceiveCount"] == variables["CHARGELOG_JOB_MAX_RECEIVES"]
    assert int(_parameter_value(template, redrive.get("maxReceiveCount", 0))) >= 1

    # A message keeps its first enqueue time in the dead-letter queue, so that queue must keep it longer.
    def retention(props: dict[str, Any]) -> int:
        return int(_parameter_value(template, props.get("MessageRetentionPeriod", 345600)))

    assert retention(_props(queues[dead_letter])) > retention(queue)

    visibility = int(_parameter_value(template, queue.get("VisibilityTimeout", 30)))
    for name, props, _ in consumers:
        timeout = int(_parameter_value(template, props.get("Timeout", 3)))
        assert visibility >= 6 * timeout, f"{work_queue} VisibilityTimeout {visibility} < 6 x {name}'s {timeout}"


def test_the_export_queue_feeds_only_the_export_function_and_outlasts_it(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["CHARGELOG_EXPORT_QUEUE_URL"] == {"Ref": "ExportQueue"}
    consumers = [
        (name, props, event["Properties"])
        for name, props in _serverless_functions(template).items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS" and _target(event["Properties"].get("Queue")) == "ExportQueue"
    ]
    assert [name for name, _, _ in consumers] == ["ExportFunction"]
    ((_, function, event),) = consumers
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    queue = _props(queues["ExportQueue"])
    assert queue["SqsManagedSseEnabled"] is True
    dead_letter = _target(queue["RedrivePolicy"]["deadLetterTargetArn"])
    assert dead_letter == "ExportDeadLetterQueue"
    assert _props(queues[dead_letter])["SqsManagedSseEnabled"] is True
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 1
    assert int(_props(queues[dead_letter])["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"])
    assert int(queue["VisibilityTimeout"]) >= 6 * int(function["Timeout"])


def _statement_grants(props: dict[str, Any]) -> list[tuple[frozenset[str], Any]]:
    """(actions, resources) of a function's inline policy statements."""
    return [
        (frozenset(_as_list(statement["Action"])), statement["Resource"])
        for policy in props.get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in _statements(policy)
    ]


def test_exports_are_queued_by_the_api_and_written_by_the_export_function_only(template: dict[str, Any]) -> None:
    functions = _serverless_functions(template)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["CHARGELOG_EXPORTS_BUCKET"] == {"Ref": "ExportsBucket"}
    export_objects = {"Fn::Sub": "${ExportsBucket.Arn}/exports/*"}
    senders = [
        name
        for name, props in functions.items()
        if {"QueueName": {"Fn::GetAtt": ["ExportQueue", "QueueName"]}}
        in [p.get("SQSSendMessagePolicy") for p in props.get("Policies", []) if isinstance(p, dict)]
    ]
    assert senders == ["ApiFunction"]
    grants = {
        name: [
            (actions, resource) for actions, resource in _statement_grants(props) if "ExportsBucket" in str(resource)
        ]
        for name, props in functions.items()
    }
    assert grants.pop("ApiFunction") == [(frozenset({"s3:GetObject"}), export_objects)]  # to presign downloads
    assert grants.pop("ExportFunction") == [(frozenset({"s3:PutObject", "s3:AbortMultipartUpload"}), export_objects)]
    assert all(not found for found in grants.values()), grants
    assert functions["ExportFunction"]["Timeout"] == 900


# ---------------------------------------------------------------------------------------------- API


def test_api_requires_a_key_and_throttles_it(template: dict[str, Any], transformed: dict[str, Any]) -> None:
    apis = _resources(template, "AWS::Serverless::Api")
    assert set(apis) == {"Api", "UploadApi"}
    auth = _props(apis["Api"]).get("Auth", {})
    assert auth.get("ApiKeyRequired") is True
    usage_plan = auth.get("UsagePlan", {})
    assert usage_plan.get("CreateUsagePlan") in ("PER_API", "SHARED")
    assert {"RateLimit", "BurstLimit"} <= set(usage_plan.get("Throttle", {}))

    plans = _resources(transformed, "AWS::ApiGateway::UsagePlan")
    assert len(plans) == 1
    (plan,) = plans.values()
    assert {"RateLimit", "BurstLimit"} <= set(_props(plan).get("Throttle", {}))
    assert _resources(transformed, "AWS::ApiGateway::ApiKey"), "no API key is created"
    assert _resources(transformed, "AWS::ApiGateway::UsagePlanKey"), "the API key is not on the usage plan"


# What needs no key: liveness, the web viewer's static files and Swagger UI (no data; their pages send the key on
# data calls).
OPEN_ROUTES = {("GET", "/health"), ("GET", "/ui"), ("GET", "/ui/{proxy+}"), ("GET", "/docs")}


def test_only_open_routes_are_open_in_the_template(template: dict[str, Any]) -> None:
    routes = _api_routes(template)
    assert len(routes) > 1
    assert {route for route, key_required in routes.items() if not key_required} == OPEN_ROUTES


def test_only_open_routes_are_open_in_the_deployed_api(template: dict[str, Any], transformed: dict[str, Any]) -> None:
    rest_apis = _resources(transformed, "AWS::ApiGateway::RestApi")
    # An Api event without RestApiId would create SAM's implicit API (no key); UploadApi is token-scoped instead.
    assert set(rest_apis) == {"Api", "UploadApi"}
    deployed: dict[tuple[str, str], bool] = {}
    for api in [rest_apis["Api"]]:
        body = _props(api)["Body"]
        api_key = {"type": "apiKey", "name": "x-api-key", "in": "header"}
        assert body["securityDefinitions"]["api_key"] == api_key
        for path, methods in body["paths"].items():
            for method, operation in methods.items():
                security = operation.get("security", body.get("security", []))
                deployed[(method.upper(), path)] = any("api_key" in scheme for scheme in security)
    assert set(deployed) == set(_api_routes(template))
    assert {route for route, key_required in deployed.items() if not key_required} == OPEN_ROUTES


# ---------------------------------------------------------------------------------------------- secrets


def test_every_vendor_has_one_tagged_secret_under_the_vendor_prefix(template: dict[str, Any]) -> None:
    prefix = template["Globals"]["Function"]["Environment"]["Variables"]["CHARGELOG_VENDOR_SECRET_PREFIX"]
    vendors = []
    for name, secret in _resources(template, "AWS::SecretsManager::Secret").items():
        if name in ("CursorSecret", "UploadTokenSecret"):  # keys of our own, not a vendor's connection
            continue
        tags = {tag["Key"]: tag["Value"] for tag in _props(secret).get("Tags", [])}
        vendor = tags.get("chargelog:vendor")
        assert vendor in VENDORS, f"{name} has chargelog:vendor tag {vendor!r}"
        assert _props(secret).get("Name") == {"Fn::Sub": prefix["Fn::Sub"] + vendor}, name
        vendors.append(vendor)
    assert sorted(vendors) == sorted(VENDORS)


def test_the_cursor_key_is_generated_and_only_the_api_reads_it(template: dict[str, Any]) -> None:
    cursor_secret = _props(_resources(template, "AWS::SecretsManager::Secret")["CursorSecret"])
    assert cursor_secret["GenerateSecretString"]["PasswordLength"] >= 32
    assert "SecretString" not in cursor_secret
    readers = [
        name
        for name, function in _resources(template, "AWS::Serverless::Function").items()
        if {"SecretArn": {"Ref": "CursorSecret"}}
        in [
            p.get("AWSSecretsManagerGetSecretValuePolicy")
            for p in _props(function).get("Policies", [])
            if isinstance(p, dict)
        ]
    ]
    assert readers == ["ApiFunction"]


# ---------------------------------------------------------------------------------------------- cfn-lint


def test_cfn_lint_reports_nothing() -> None:
    # cfn-lint has no `python -m cfnlint` entry point (no cfnlint/__main__.py), so call its console
    # script's function with this interpreter.
    result = subprocess.run(
        [sys.executable, "-c", "from cfnlint.runner import main; main()", str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"cfn-lint exited {result.returncode}:\n{result.stdout}{result.stderr}"
    assert result.stdout.strip() == "", result.stdout


# ---------------------------------------------------------------------------------------------- diagnostics uploads

UPLOAD_ROUTES = {
    ("PUT", "/u/{charger_id}/{token}"),
    ("POST", "/u/{charger_id}/{token}"),
    ("PUT", "/u/{charger_id}/{token}/{filename}"),
    ("POST", "/u/{charger_id}/{token}/{filename}"),
}


def _upload_body(transformed: dict[str, Any]) -> dict[str, Any]:
    return dict(_props(_resources(transformed, "AWS::ApiGateway::RestApi")["UploadApi"])["Body"])


def test_upload_routes_need_no_api_key_but_every_one_the_uncached_token_authorizer(
    transformed: dict[str, Any],
) -> None:
    body = _upload_body(transformed)
    operations = {
        (method.upper(), path): operation
        for path, methods in body["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == UPLOAD_ROUTES
    (scheme_name,) = body["securityDefinitions"]
    scheme = body["securityDefinitions"][scheme_name]
    assert scheme["x-amazon-apigateway-authtype"] == "custom"
    authorizer = scheme["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["authorizerResultTtlInSeconds"] == 0, "a cached Allow would let an expired token through"
    assert "UploadAuthorizerFunction.Arn" in json.dumps(authorizer["authorizerUri"])
    for route, operation in operations.items():
        assert operation["security"] == [{scheme_name: []}], route
        assert not any("api_key" in scheme for scheme in operation["security"]), route
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    # No API key, usage plan or key requirement on this API.
    assert "api_key" not in body["securityDefinitions"]
    assert _resources(transformed, "AWS::ApiGateway::UsagePlan").keys().isdisjoint({"UploadApiUsagePlan"})


def test_uploads_go_straight_to_s3_under_incoming_with_the_key_the_authorizer_names(
    transformed: dict[str, Any],
) -> None:
    body = _upload_body(transformed)
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws", (method, path)
            assert integration["httpMethod"] == "PUT"
            assert ":s3:path/${DiagnosticsBucket}/{key}" in json.dumps(integration["uri"])
            assert integration["requestParameters"]["integration.request.path.key"] == "context.authorizer.object_key"
            assert integration["credentials"] == {"Fn::GetAtt": ["UploadApiRole", "Arn"]}
            success = integration["responses"]["2\\d{2}"]
            assert success["statusCode"] == "200"
            assert integration["responses"]["default"]["statusCode"].startswith("5")
    responses = body["x-amazon-apigateway-gateway-responses"]
    # A string in this extension (https://docs.aws.amazon.com/apigateway/latest/developerguide/
    # api-gateway-swagger-extensions-gateway-responses.gatewayResponse.html).
    assert responses["REQUEST_TOO_LARGE"]["statusCode"] == "413"
    assert responses["ACCESS_DENIED"]["statusCode"] == "403"
    assert all(isinstance(spec.get("statusCode", ""), str) for spec in responses.values())
    for kind in ("ACCESS_DENIED", "UNAUTHORIZED", "REQUEST_TOO_LARGE", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX"):
        assert '"status": ' in responses[kind]["responseTemplates"]["application/json"], kind


def test_the_upload_role_may_only_put_objects_under_incoming(template: dict[str, Any]) -> None:
    role = _props(template["Resources"]["UploadApiRole"])
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    statements = [s for policy in role["Policies"] for s in _statements(policy["PolicyDocument"])]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in statements] == [
        ("Allow", "s3:PutObject", {"Fn::Sub": "${DiagnosticsBucket.Arn}/incoming/*"})
    ]


def test_the_indexer_reads_incoming_writes_diagnostics_and_nothing_else(template: dict[str, Any]) -> None:
    functions = _serverless_functions(template)
    grants = {
        name: [(a, r) for a, r in _statement_grants(props) if "DiagnosticsBucket" in str(r)]
        for name, props in functions.items()
    }
    assert grants.pop("DiagnosticsIndexerFunction") == [
        (frozenset({"s3:GetObject", "s3:DeleteObject"}), {"Fn::Sub": "${DiagnosticsBucket.Arn}/incoming/*"}),
        (frozenset({"s3:PutObject"}), {"Fn::Sub": "${DiagnosticsBucket.Arn}/diagnostics/*"}),
    ]
    # The API presigns downloads of final files (diagreq), nothing more.
    for name, found in grants.items():
        assert all(actions <= {"s3:GetObject"} for actions, _ in found), (name, found)
    events = functions["DiagnosticsIndexerFunction"]["Events"]
    (event,) = events.values()
    assert event["Type"] == "SQS"
    assert _target(event["Properties"]["Queue"]) == "DiagnosticsUploadQueue"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = _props(template["Resources"]["DiagnosticsUploadQueue"])
    assert int(queue["VisibilityTimeout"]) >= 6 * int(functions["DiagnosticsIndexerFunction"]["Timeout"])
    assert _target(queue["RedrivePolicy"]["deadLetterTargetArn"]) == "DiagnosticsUploadDeadLetterQueue"


def test_the_bucket_announces_incoming_objects_on_the_upload_queue(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["DiagnosticsBucket"]
    assert bucket["DependsOn"] == "DiagnosticsUploadQueuePolicy"
    (config,) = _props(bucket)["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert _target(config["Queue"]) == "DiagnosticsUploadQueue"
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    policy = _props(template["Resources"]["DiagnosticsUploadQueuePolicy"])
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_only_the_api_gateway_of_this_stack_may_invoke_the_authorizer(template: dict[str, Any]) -> None:
    permission = _props(template["Resources"]["UploadAuthorizerPermission"])
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == {"Fn::GetAtt": ["UploadAuthorizerFunction", "Arn"]}
    assert "${UploadApi}/authorizers/*" in permission["SourceArn"]["Fn::Sub"]


def test_the_dispatcher_writes_only_collector_state_items(template: dict[str, Any]) -> None:
    """It marks each source's scheduled job pending; it may update nothing else in the table."""
    props = _serverless_functions(template)["DispatcherFunction"]
    table_grants = [
        statement
        for policy in props.get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in _statements(policy)
        if "Table" in str(statement["Resource"])
    ]
    assert table_grants == [
        {
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["COLLECTOR"]}},
        }
    ]
    assert {"TableName": {"Ref": "Table"}} in [p.get("DynamoDBReadPolicy") for p in props["Policies"]]
    assert "DynamoDBCrudPolicy" not in str(props["Policies"])


# ---------------------------------------------------------------------------------------------- Athena


def _glue_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Glue::Table's TableInput, by table name."""
    return {
        _props(resource)["TableInput"]["Name"]: _props(resource)["TableInput"]
        for resource in _resources(template, "AWS::Glue::Table").values()
    }


def _rendered(sub: dict[str, Any], buckets: dict[str, str], partitions: dict[str, str]) -> str:
    """An Fn::Sub S3 address with the buckets' logical ids and the projection's ``${!name}`` placeholders filled."""
    text = sub["Fn::Sub"]
    for name, value in partitions.items():
        text = text.replace("${!" + name + "}", value)
    for logical_id, value in buckets.items():
        text = text.replace("${" + logical_id + "}", value)
    assert "${" not in text, text
    return text


def _worker_bucket(template: dict[str, Any], variable: str) -> str:
    """The logical id of the bucket a settings variable names (the one the worker writes to)."""
    target = _target(template["Globals"]["Function"]["Environment"]["Variables"][variable])
    assert target is not None
    return target


def test_each_glue_table_reads_the_keys_the_worker_writes(template: dict[str, Any]) -> None:
    from datetime import UTC, date, datetime

    from chargelog.dal.archive import RAW_PREFIX, page_key
    from chargelog.dal.record_archive import RECORDS_PREFIX, object_key

    records_bucket = _worker_bucket(template, "CHARGELOG_RECORD_ARCHIVE_BUCKET")
    raw_bucket = _worker_bucket(template, "CHARGELOG_RAW_BUCKET")
    buckets = {records_bucket: "archive-bucket", raw_bucket: "raw-bucket"}
    fetched = datetime(2025, 1, 31, 23, 59, 58, tzinfo=UTC)
    written = {
        "records": (
            f"s3://archive-bucket/{object_key('ocpplab', 'CP/7', date(2025, 1, 31), ['ocpplab:1'])}",
            f"s3://archive-bucket/{RECORDS_PREFIX}/",
            {"vendor": "ocpplab", "date": "2025-01-31"},
        ),
        "raw_pages": (
            f"s3://raw-bucket/{page_key('ocpplab', 'CP/7', 'job-1', fetched, 3)}",
            f"s3://raw-bucket/{RAW_PREFIX}/",
            {"vendor": "ocpplab", "source": "CP_7", "date": "2025-01-31"},
        ),
    }
    tables = _glue_tables(template)
    assert sorted(tables) == sorted(written)
    for name, (key, location, partitions) in written.items():
        table = tables[name]
        parameters = table["Parameters"]
        assert [p["Name"] for p in table["PartitionKeys"]] == list(partitions), name
        prefix = _rendered(parameters["storage.location.template"], buckets, partitions)
        assert key.startswith(prefix), (name, key, prefix)
        assert "/" not in key.removeprefix(prefix), (name, key, prefix)
        assert _rendered(table["StorageDescriptor"]["Location"], buckets, {}) == location
        assert prefix.startswith(location)
        # The projection: every partition of the key, the date in the keys' format, the vendors chargelog has.
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.date.type"] == "date"
        assert parameters["projection.date.format"] == "yyyy-MM-dd"
        assert parameters["projection.vendor.type"] == "enum"
        assert parameters["projection.vendor.values"].split(",") == list(CHARGELOG_VENDORS)
        assert all(f"projection.{p}.type" in parameters for p in partitions)
        assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
        assert key.endswith(".gz")  # Athena reads gzip by the name


def test_the_records_table_has_a_column_for_every_archived_field(template: dict[str, Any]) -> None:
    from chargelog.dal.record_archive import EXCLUDED_FIELDS
    from chargelog.models.records import LogRecord

    table = _glue_tables(template)["records"]
    columns = {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
    partitions = {p["Name"] for p in table["PartitionKeys"]}
    assert not columns & partitions
    assert columns | {"vendor"} == set(LogRecord.model_fields) - EXCLUDED_FIELDS


def test_the_worker_may_only_put_archive_objects_under_records(template: dict[str, Any]) -> None:
    from chargelog.dal.record_archive import RECORDS_PREFIX

    bucket = _worker_bucket(template, "CHARGELOG_RECORD_ARCHIVE_BUCKET")
    functions = _serverless_functions(template)
    grants = {
        name: [(a, r) for a, r in _statement_grants(props) if bucket in str(r)] for name, props in functions.items()
    }
    assert grants.pop("WorkerFunction") == [
        (frozenset({"s3:PutObject"}), {"Fn::Sub": f"${{{bucket}.Arn}}/{RECORDS_PREFIX}/*"})
    ]
    # Exports older than the hot window read the archive: list and get under records/, nothing else.
    assert grants.pop("ExportFunction") == [
        (frozenset({"s3:ListBucket"}), {"Fn::GetAtt": [bucket, "Arn"]}),
        (frozenset({"s3:GetObject"}), {"Fn::Sub": f"${{{bucket}.Arn}}/{RECORDS_PREFIX}/*"}),
    ]
    (listing,) = [
        statement
        for policy in functions["ExportFunction"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if statement["Action"] == "s3:ListBucket"
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{RECORDS_PREFIX}/*"}}
    assert all(not found for found in grants.values()), grants


def test_the_archive_expires_and_only_objects_above_the_ia_minimum_change_class(template: dict[str, Any]) -> None:
    bucket = _worker_bucket(template, "CHARGELOG_RECORD_ARCHIVE_BUCKET")
    rules = _props(template["Resources"][bucket])["LifecycleConfiguration"]["Rules"]
    expiring = [rule for rule in rules if "ExpirationInDays" in rule]
    assert [(r["Prefix"], r["ExpirationInDays"]) for r in expiring] == [("records/", {"Ref": "ArchiveRetentionDays"})]
    assert template["Parameters"]["ArchiveRetentionDays"]["Default"] == 400
    for rule in rules:
        if "Transitions" in rule:
            assert int(rule["ObjectSizeGreaterThan"]) >= 128 * 1024, rule  # Standard-IA bills 128 KB at least


def test_the_workgroup_enforces_a_scan_cutoff_and_keeps_results_encrypted_a_week(template: dict[str, Any]) -> None:
    (workgroup,) = _resources(template, "AWS::Athena::WorkGroup").values()
    config = _props(workgroup)["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "BytesScannedCutoffPerQuery"}
    assert int(template["Parameters"]["BytesScannedCutoffPerQuery"]["Default"]) >= 10_000_000
    results = config["ResultConfiguration"]
    assert results["EncryptionConfiguration"]["EncryptionOption"] in {"SSE_S3", "SSE_KMS", "CSE_KMS"}
    location = results["OutputLocation"]["Fn::Sub"]
    assert location.startswith("s3://${"), location
    bucket = location.removeprefix("s3://${").split("}", 1)[0]
    assert bucket not in {
        _worker_bucket(template, v) for v in ("CHARGELOG_RAW_BUCKET", "CHARGELOG_RECORD_ARCHIVE_BUCKET")
    }
    rules = _props(template["Resources"][bucket])["LifecycleConfiguration"]["Rules"]
    assert any(rule["Status"] == "Enabled" and 0 < int(rule.get("ExpirationInDays", 0)) <= 31 for rule in rules)
    (database,) = _resources(template, "AWS::Glue::Database").values()
    assert all(_target(_props(t)["DatabaseName"]) for t in _resources(template, "AWS::Glue::Table").values())
    assert _props(database)["DatabaseInput"]["Name"] == {"Ref": "AthenaDatabaseName"}


# Every gateway response type API Gateway has, with the status it answers by default (API Gateway developer guide,
# "Gateway response types for API Gateway").
GATEWAY_RESPONSE_TYPES = {
    "ACCESS_DENIED": 403,
    "API_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500,
    "BAD_REQUEST_PARAMETERS": 400,
    "BAD_REQUEST_BODY": 400,
    "DEFAULT_4XX": 400,
    "DEFAULT_5XX": 502,  # set so: with every other type named, what is left is a Lambda proxy error, a 502
    "EXPIRED_TOKEN": 403,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
    "INVALID_API_KEY": 403,
    "INVALID_SIGNATURE": 403,
    "MISSING_AUTHENTICATION_TOKEN": 404,  # not 403: an unknown path is a 404 problem here
    "QUOTA_EXCEEDED": 429,
    "REQUEST_TOO_LARGE": 413,
    "RESOURCE_NOT_FOUND": 404,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "WAF_FILTERED": 403,
}


def _rendered_problem(body_template: str) -> dict[str, Any]:
    """A gateway response body as API Gateway would render it (its variables filled with a JSON string)."""
    text = body_template.replace("$context.error.messageString", '"a message"')
    return dict(json.loads(re.sub(r"\$context\.authorizer\.[A-Za-z0-9_]+", "a reason", text)))


def test_every_gateway_response_answers_with_a_problem_whose_status_is_its_own(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    rest_api = _props(template["Resources"]["Api"])["GatewayResponses"]
    api = {kind: (spec["StatusCode"], spec["ResponseTemplates"]) for kind, spec in rest_api.items()}
    upload_body = _upload_body(transformed)
    uploads = {
        kind: (int(spec["statusCode"]), spec["responseTemplates"])
        for kind, spec in upload_body["x-amazon-apigateway-gateway-responses"].items()
    }
    for name, responses in (("Api", api), ("UploadApi", uploads)):
        assert set(responses) == set(GATEWAY_RESPONSE_TYPES), name
        for kind, (status, templates) in responses.items():
            assert status == GATEWAY_RESPONSE_TYPES[kind], (name, kind)
            problem = _rendered_problem(templates["application/json"])
            assert problem["status"] == status, (name, kind)
            assert problem.keys() >= {"type", "title", "status", "detail"}, (name, kind)


def test_both_apis_write_json_access_logs_that_never_hold_a_path_or_a_token(
    template: dict[str, Any], transformed: dict[str, Any]
) -> None:
    stages = _resources(transformed, "AWS::ApiGateway::Stage")
    assert len(stages) == 2
    resources = template["Resources"]
    for stage in stages.values():
        setting = _props(stage)["AccessLogSetting"]
        group = setting["DestinationArn"]["Fn::GetAtt"][0]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert _props(resources[group])["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        line = json.loads(setting["Format"])  # one JSON object per request
        assert {"requestId", "route", "status", "ip"} <= line.keys()
        assert line["route"] == "$context.resourcePath"  # /u/{charger_id}/{token}, the template
        variables = set(re.findall(r"\$context\.[A-Za-z.]+", setting["Format"]))
        assert not {"$context.path", "$context.authorizer.principalId"} & variables
        assert not any(v.startswith(("$context.requestOverride", "$input")) for v in variables)


def test_waf_and_reserved_concurrency_are_off_by_default_and_cover_both_apis_when_on(template: dict[str, Any]) -> None:
    parameters, resources = template["Parameters"], template["Resources"]
    assert parameters["WafRateLimitPerIp"]["Default"] == 0
    assert parameters["ApiReservedConcurrency"]["Default"] == 0
    associations = {n: r for n, r in resources.items() if r["Type"] == "AWS::WAFv2::WebACLAssociation"}
    arns = {_props(r)["ResourceArn"]["Fn::Sub"] for r in associations.values()}
    assert {re.search(r"/restapis/\$\{(\w+)\}/stages/", arn).group(1) for arn in arns} == {"Api", "UploadApi"}
    assert all(r["Condition"] == "HasWaf" for r in associations.values())
    (rule,) = _props(resources["ApiWebAcl"])["Rules"]
    assert rule["Statement"]["RateBasedStatement"] == {
        "Limit": {"Ref": "WafRateLimitPerIp"},
        "EvaluationWindowSec": 300,
        "AggregateKeyType": "IP",
    }
    blocked = rule["Action"]["Block"]["CustomResponse"]
    body = _props(resources["ApiWebAcl"])["CustomResponseBodies"][blocked["CustomResponseBodyKey"]]
    assert json.loads(body["Content"])["status"] == blocked["ResponseCode"] == 429
    for function in ("ApiFunction", "UploadAuthorizerFunction"):
        assert _props(resources[function])["ReservedConcurrentExecutions"] == {
            "Fn::If": ["ReservesApiConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
        }


def test_the_upload_stage_is_not_traced(template: dict[str, Any]) -> None:
    """The upload API's URL holds the token, and an X-Ray trace of the stage would record it."""
    assert _props(template["Resources"]["UploadApi"])["TracingEnabled"] is False


def _role_statements_of(transformed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = transformed["Resources"][f"{function}Role"]
    return [s for policy in _role_policies(_props(role)) for s in _statements(policy["PolicyDocument"])]


@pytest.mark.parametrize("function", ["UploadAuthorizerFunction", "DiagnosticsIndexerFunction"])
def test_the_upload_functions_touch_diagnostics_items_only(transformed: dict[str, Any], function: str) -> None:
    """The internet-facing authorizer and the indexer: a few item actions, on keys starting DIAG#, nothing else."""
    table_statements = [
        s
        for s in _role_statements_of(transformed, function)
        if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    assert table_statements
    for statement in table_statements:
        actions = set(_as_list(statement["Action"]))
        assert actions <= {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, actions
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["DIAG#*"]}}
        assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}


def test_every_sqs_consumer_may_consume_only_its_own_queues(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    consumers = {
        name: {
            event["Properties"]["Queue"]["Fn::GetAtt"][0]
            for event in _props(r).get("Events", {}).values()
            if event["Type"] == "SQS"
        }
        for name, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    consumers = {name: queues for name, queues in consumers.items() if queues}
    assert set(consumers) == {"WorkerFunction", "ExportFunction", "DiagnosticsIndexerFunction", "AlertNotifierFunction"}
    for function, queues in consumers.items():
        boundary = resources[_props(resources[function])["PermissionsBoundary"]["Ref"]]
        statements = _props(boundary)["PolicyDocument"]["Statement"]
        (deny,) = [s for s in statements if s["Effect"] == "Deny"]
        assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(deny["Action"])
        assert {ref["Fn::GetAtt"][0] for ref in deny["NotResource"]} == queues, function
        assert all(s["Resource"] == "*" and "*" not in s["Action"] for s in statements if s["Effect"] == "Allow")


def test_every_deployed_lambda_logs_to_a_group_the_stack_keeps_log_retention_days(
    transformed: dict[str, Any],
) -> None:
    """Without its own group, Lambda makes /aws/lambda/<name> on first use, kept forever and outside the stack."""
    resources = transformed["Resources"]
    functions = _resources(transformed, "AWS::Lambda::Function")
    groups = {name: _props(function).get("LoggingConfig", {}).get("LogGroup") for name, function in functions.items()}
    assert all(groups.values()), groups
    for name, group in groups.items():
        target = _target(group)
        assert target is not None, name
        assert resources[target]["Type"] == "AWS::Logs::LogGroup", name
        assert _props(resources[target])["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    assert len({_target(group) for group in groups.values()}) == len(functions)
    every_group = _resources(transformed, "AWS::Logs::LogGroup")
    assert all(_props(g)["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in every_group.values())


# ---------------------------------------------------------------------------------------------- charger health

# HealthThresholds fields the template does not make parameters: the model's defaults apply.
THRESHOLDS_WITHOUT_PARAMETERS = {"CHARGELOG_OFFLINE_HEARTBEATS", "CHARGELOG_FAILURE_ALERT_HOURS"}


def test_the_health_thresholds_are_parameters_the_worker_and_the_monitor_both_get(template: dict[str, Any]) -> None:
    from chargelog.models.alerts import HealthThresholds
    from chargelog.settings import Settings

    functions = _serverless_functions(template)
    parameters = template["Parameters"]
    worker = functions["WorkerFunction"]["Environment"]["Variables"]
    monitor = functions["HealthMonitorFunction"]["Environment"]["Variables"]
    expected = {f.alias: f.default for f in HealthThresholds.model_fields.values()}
    expected = {alias: default for alias, default in expected.items() if alias not in THRESHOLDS_WITHOUT_PARAMETERS}
    settings = {f.alias: f.default for f in Settings.model_fields.values()}
    expected |= {name: settings[name] for name in ("CHARGELOG_ALERT_RETENTION_DAYS",)}
    for variables in (worker, monitor):
        assert variables["CHARGELOG_ALERT_QUEUE_URL"] == {"Ref": "AlertQueue"}
        for alias, default in expected.items():
            parameter = parameters[_target(variables[alias])]
            assert parameter["Type"] == "Number", alias
            assert float(parameter["Default"]) == float(default), alias  # the template's default is the model's
    assert {
        k: v for k, v in worker.items() if k not in template["Globals"]["Function"]["Environment"]["Variables"]
    } == {k: v for k, v in monitor.items() if k not in template["Globals"]["Function"]["Environment"]["Variables"]}
    notifier = functions["AlertNotifierFunction"]["Environment"]["Variables"]
    assert notifier["CHARGELOG_ALERT_NOTIFICATIONS_PER_HOUR"] == {"Ref": "AlertNotificationsPerHour"}
    assert parameters["AlertNotificationsPerHour"]["Default"] == settings["CHARGELOG_ALERT_NOTIFICATIONS_PER_HOUR"]
    assert notifier["CHARGELOG_CHARGER_ALERT_TOPIC_ARN"] == {"Ref": "ChargerAlertTopic"}
    assert notifier["CHARGELOG_ALERT_WEBHOOK_SECRET_ARN"] == {"Ref": "AlertWebhookSecretArn"}
    assert parameters["AlertWebhookSecretArn"]["Default"] == ""


def test_the_scheduling_parameters_reach_the_dispatcher_and_the_worker_with_the_models_defaults(
    template: dict[str, Any],
) -> None:
    from chargelog.logic.scheduling import POLICIES
    from chargelog.settings import Settings

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    parameters = template["Parameters"]
    settings = {f.alias: f.default for f in Settings.model_fields.values()}
    for alias, parameter in {
        "CHARGELOG_SCHEDULE_MINUTES": "ScheduleMinutes",
        "CHARGELOG_SCHEDULING_POLICY": "SchedulingPolicy",
        "CHARGELOG_MAX_POLL_INTERVAL_MINUTES": "MaxPollIntervalMinutes",
        "CHARGELOG_WORKER_CONCURRENCY": "VendorWorkerConcurrency",
    }.items():
        assert variables[alias] == {"Ref": parameter}, alias
        assert str(parameters[parameter]["Default"]) == str(settings[alias]), alias
    assert tuple(parameters["SchedulingPolicy"]["AllowedValues"]) == POLICIES
    # A bound shorter than a pass polls every source every pass (still within the budget): allowed, not useful.
    assert parameters["MaxPollIntervalMinutes"]["MinValue"] >= 5
    # A quiet source's mark falls up to the bound behind by design, and its job takes up to a pass to run: by default
    # the lag alarm (and the health monitor's trust in a collector's mark) stays for collectors that stopped.
    from chargelog.logic.charger_health.sweep import STALE_COLLECTOR_AFTER

    worst = parameters["MaxPollIntervalMinutes"]["Default"] + parameters["ScheduleMinutes"]["Default"]
    assert worst < parameters["LagAlarmMinutes"]["Default"]
    assert worst < STALE_COLLECTOR_AFTER.total_seconds() / 60


def test_the_health_monitor_runs_on_the_collection_schedule(template: dict[str, Any]) -> None:
    functions = _serverless_functions(template)
    (schedule,) = functions["HealthMonitorFunction"]["Events"].values()
    (collect,) = functions["DispatcherFunction"]["Events"].values()
    assert schedule["Type"] == "Schedule"
    assert schedule["Properties"]["Schedule"] == collect["Properties"]["Schedule"]


def test_the_alert_queue_is_sent_to_by_the_worker_and_the_monitor_and_feeds_only_the_notifier(
    template: dict[str, Any],
) -> None:
    functions = _serverless_functions(template)
    queues = _resources(template, "AWS::SQS::Queue")
    senders = sorted(
        name
        for name, props in functions.items()
        if {"QueueName": {"Fn::GetAtt": ["AlertQueue", "QueueName"]}}
        in [p.get("SQSSendMessagePolicy") for p in props.get("Policies", []) if isinstance(p, dict)]
    )
    assert senders == ["HealthMonitorFunction", "WorkerFunction"]
    consumers = [
        (name, props, event["Properties"])
        for name, props in functions.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "SQS" and _target(event["Properties"].get("Queue")) == "AlertQueue"
    ]
    ((name, function, event),) = consumers
    assert name == "AlertNotifierFunction"
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["BatchSize"] == 10
    queue = _props(queues["AlertQueue"])
    assert queue["SqsManagedSseEnabled"] is True
    dead_letter = _target(queue["RedrivePolicy"]["deadLetterTargetArn"])
    assert dead_letter == "AlertDeadLetterQueue"
    assert _props(queues[dead_letter])["SqsManagedSseEnabled"] is True
    assert int(_props(queues[dead_letter])["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"])
    assert int(queue["VisibilityTimeout"]) >= 6 * int(function["Timeout"])


def _table_statements(transformed: dict[str, Any], function: str) -> list[dict[str, Any]]:
    return [
        s
        for s in _role_statements_of(transformed, function)
        if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]


def test_the_alert_notifier_reads_and_claims_alert_items_and_counts_in_its_own_items_only(
    transformed: dict[str, Any],
) -> None:
    (statement,) = _table_statements(transformed, "AlertNotifierFunction")
    assert set(_as_list(statement["Action"])) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ALERT#*", "ALERTNOTIFY"]}}
    statements = _role_statements_of(transformed, "AlertNotifierFunction")
    publishes = [s for s in statements if "sns:Publish" in _as_list(s["Action"])]
    assert [s["Resource"] for s in publishes] == [{"Ref": "ChargerAlertTopic"}]
    keys = [s for s in statements if any(a.startswith("kms:") for a in _as_list(s["Action"]))]
    assert [s["Resource"] for s in keys] == [{"Fn::GetAtt": ["ChargerAlertTopicKey", "Arn"]}]
    # The webhook's secret: read only when one is named, that one only.
    role = transformed["Resources"]["AlertNotifierFunctionRole"]
    conditional = [p["Fn::If"] for p in _props(role)["Policies"] if "Fn::If" in p]
    ((condition, policy, otherwise),) = conditional
    assert (condition, otherwise) == ("HasAlertWebhook", {"Ref": "AWS::NoValue"})
    (read,) = _statements(policy["PolicyDocument"])
    assert "secretsmanager:GetSecretValue" in _as_list(read["Action"])
    assert read["Resource"] == {"Fn::Sub": ["${secretArn}", {"secretArn": {"Ref": "AlertWebhookSecretArn"}}]}
    assert [s for s in statements if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))] == [read]


def test_the_health_monitor_touches_health_charger_collector_and_alert_items_only(transformed: dict[str, Any]) -> None:
    statements = _table_statements(transformed, "HealthMonitorFunction")
    assert statements
    allowed = {
        "dynamodb:Query": {"HEALTH", "CHARGERS", "COLLECTOR"},
        "dynamodb:GetItem": {"HEALTH", "ALERT#*"},
        "dynamodb:PutItem": {"HEALTH", "ALERT#*"},
        "dynamodb:UpdateItem": {"HEALTH", "ALERT#*", "COLLECTOR"},
        "dynamodb:BatchGetItem": {"ALERT#*"},
    }
    for statement in statements:
        assert statement["Resource"] == {"Fn::GetAtt": ["Table", "Arn"]}
        ((operator, keys),) = statement["Condition"].items()
        assert operator.startswith("ForAllValues:")
        for action in _as_list(statement["Action"]):
            assert set(keys["dynamodb:LeadingKeys"]) <= allowed[action], action
        if "COLLECTOR" in keys["dynamodb:LeadingKeys"] and "dynamodb:UpdateItem" in _as_list(statement["Action"]):
            # A collector's state: the poke only (the scheduler's poked_at), never its mark, lease or checkpoint.
            assert set(keys["dynamodb:Attributes"]) == {"pk", "sk", "poked_at", "vendor", "source_id"}


def test_charger_alerts_have_a_topic_of_their_own_encrypted_with_a_key_of_their_own(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    topic = _props(resources["ChargerAlertTopic"])
    assert _target(topic["KmsMasterKeyId"]) == "ChargerAlertTopicKey"
    assert _target(topic["KmsMasterKeyId"]) != _target(_props(resources["AlarmTopic"])["KmsMasterKeyId"])
    assert _props(resources["ChargerAlertTopicKey"])["EnableKeyRotation"] is True
    (policy,) = [
        _props(r)
        for r in _resources(template, "AWS::SNS::TopicPolicy").values()
        if _props(r)["Topics"] == [{"Ref": "ChargerAlertTopic"}]
    ]
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Action"]) == ("Deny", "sns:Publish")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (subscription,) = [
        r
        for r in _resources(template, "AWS::SNS::Subscription").values()
        if _props(r)["TopicArn"] == {"Ref": "ChargerAlertTopic"}
    ]
    assert subscription["Condition"] == "HasChargerAlertEmail"
    assert _props(subscription)["Endpoint"] == {"Ref": "ChargerAlertEmail"}
    assert template["Parameters"]["ChargerAlertEmail"]["Default"] == ""
    publishers = [
        name
        for name, props in _serverless_functions(template).items()
        if any(
            "sns:Publish" in actions and resource == {"Ref": "ChargerAlertTopic"}
            for actions, resource in _statement_grants(props)
        )
    ]
    assert publishers == ["AlertNotifierFunction"]
