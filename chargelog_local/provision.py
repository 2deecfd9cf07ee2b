"""Creates the template's stateful resources (tables, buckets, queues, secrets, log groups, the alarm topic) in moto.

Each resource is created from its own definition in template.yaml, translated property by property
into the API calls CloudFormation would make. Resources are created in dependency order, so a queue's
redrive policy can name its dead-letter queue's ARN and a bucket policy its bucket.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chargelog import aws
from chargelog_local.template import Resolver

ACCOUNT_ID = "123456789012"


@dataclass
class LocalStack:
    """What was created: logical id -> Ref value and (logical id, attribute) -> GetAtt value."""

    stack_name: str
    region: str
    parameters: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    local_omissions: list[str] = field(default_factory=list)  # what the local stack cannot apply, and why
    conditions: dict[str, Any] = field(default_factory=dict)  # the template's Conditions

    def resolver(self, on_missing: Callable[[str], str] | None = None) -> Resolver:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        return Resolver({**pseudo, **self.parameters}, self.refs, self.attributes, on_missing, self.conditions)

    def logical_id_of_arn(self, arn: str) -> str:
        return next(name for (name, attribute), value in self.attributes.items() if attribute == "Arn" and value == arn)

    def of_type(self, resource_type: str) -> list[str]:
        return [name for name, kind in self.types.items() if kind == resource_type]


def _dependencies(value: Any) -> set[str]:
    """Logical ids a resource definition refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _dependencies(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found |= {name.split(".")[0] for name in _sub_names(text)}
                found |= _dependencies(item) if not isinstance(item, str) else set()
            else:
                found |= _dependencies(item)
    return found


def _depends_on(resource: Mapping[str, Any]) -> set[str]:
    depends = resource.get("DependsOn", [])
    return {depends} if isinstance(depends, str) else set(depends)


def _sub_names(text: str) -> list[str]:
    return re.findall(r"\$\{([^}!][^}]*)\}", text)


def _tags(properties: Mapping[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}


def _create_table(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    table_name = props.get("TableName") or f"{stack.stack_name}-{name}"
    ddb = aws.client("dynamodb")
    create: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
        if key in props:
            create[key] = props[key]
    if "SSESpecification" in props:
        create["SSESpecification"] = {"Enabled": bool(props["SSESpecification"].get("SSEEnabled"))}
    if "ProvisionedThroughput" in props:
        create["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    description = ddb.create_table(**create)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        ddb.update_continuous_backups(TableName=table_name, PointInTimeRecoverySpecification=pitr)
    stack.refs[name] = table_name
    stack.attributes[(name, "Arn")] = description["TableArn"]


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    converted["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ObjectSizeGreaterThan" in rule:
        converted["Filter"] = {
            "And": {"Prefix": rule.get("Prefix", ""), "ObjectSizeGreaterThan": int(rule["ObjectSizeGreaterThan"])}
        }
    if "Transitions" in rule:
        converted["Transitions"] = [
            {"Days": int(transition["TransitionInDays"]), "StorageClass": transition["StorageClass"]}
            for transition in rule["Transitions"]
        ]
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        converted["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        }
    return converted


def _create_bucket(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    bucket = props.get("BucketName") or f"{stack.stack_name}-{name}".lower()
    s3 = aws.client("s3")
    if stack.region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack.region})
    encryption = props.get("BucketEncryption")
    if encryption:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
            }
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
        )
    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in lifecycle["Rules"]]},
        )
    notifications = props.get("NotificationConfiguration")
    if notifications:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=_notification_configuration(stack, name, notifications)
        )
    stack.refs[name] = bucket
    stack.attributes[(name, "Arn")] = f"arn:aws:s3:::{bucket}"


def _filter(filter_: dict[str, Any]) -> dict[str, Any]:
    return {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in filter_["S3Key"]["Rules"]]}}


def _notification_configuration(stack: LocalStack, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration as S3's API takes it (queues and Lambda functions; moto's
    server delivers queue notifications itself)."""
    converted: dict[str, Any] = {}
    queues = [
        {"QueueArn": q["Queue"], "Events": [q["Event"]], **({"Filter": _filter(q["Filter"])} if "Filter" in q else {})}
        for q in config.get("QueueConfigurations", [])
    ]
    if queues:
        converted["QueueConfigurations"] = queues
    for kind in ("LambdaConfigurations", "TopicConfigurations", "EventBridgeConfiguration"):
        if kind in config:
            stack.local_omissions.append(f"{name}: NotificationConfiguration.{kind} (only queues are wired locally)")
    return converted


def _needs_tls(statement: dict[str, Any]) -> bool:
    return "aws:SecureTransport" in json.dumps(statement.get("Condition", {}))


def _create_bucket_policy(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    """The bucket policy, less statements about TLS: the local stack speaks plain HTTP to moto, and moto
    evaluates a statement's conditions as met whatever the request, so a TLS-only deny would refuse every
    object request. On AWS the template's policy applies as written."""
    document = dict(props["PolicyDocument"])
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    kept = [statement for statement in statements if not _needs_tls(statement)]
    stack.local_omissions.extend(
        f"{name}: statement {statement.get('Sid', '?')} (TLS only; local traffic is plain HTTP)"
        for statement in statements
        if _needs_tls(statement)
    )
    if kept:
        document["Statement"] = kept
        aws.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
    stack.refs[name] = props["Bucket"]


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _create_queue(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    queue_name = props.get("QueueName") or f"{stack.stack_name}-{name}"
    attributes = {
        key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        for key in _QUEUE_ATTRIBUTES
        if key in props
    }
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.refs[name] = url
    stack.attributes[(name, "Arn")] = arn
    stack.attributes[(name, "QueueName")] = queue_name
    stack.attributes[(name, "QueueUrl")] = url


def _create_queue_policy(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    """The policy on each of its queues (moto stores it; it does not evaluate it for S3's deliveries)."""
    sqs = aws.client("sqs")
    for queue_url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    stack.refs[name] = ",".join(props["Queues"])


def _create_secret(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    secret_name = props.get("Name") or f"{stack.stack_name}-{name}"
    secret_string = props.get("SecretString")
    if secret_string is None and "GenerateSecretString" in props:
        # What CloudFormation does: a random secret of the asked length.
        length = int(props["GenerateSecretString"].get("PasswordLength", 32))
        secret_string = secrets.token_urlsafe(length)[:length]
    create: dict[str, Any] = {"Name": secret_name, "SecretString": secret_string or "{}"}
    if "Description" in props:
        create["Description"] = props["Description"]
    if "Tags" in props:
        create["Tags"] = props["Tags"]
    arn = aws.client("secretsmanager").create_secret(**create)["ARN"]
    stack.refs[name] = arn
    stack.attributes[(name, "Id")] = arn


def _create_log_group(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    """The group and its retention (locally the functions log to the console; the group is there to be seen)."""
    group_name = props.get("LogGroupName") or f"{stack.stack_name}-{name}"
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=group_name)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=group_name, retentionInDays=int(props["RetentionInDays"]))
    stack.refs[name] = group_name
    stack.attributes[(name, "Arn")] = f"arn:aws:logs:{stack.region}:{ACCOUNT_ID}:log-group:{group_name}:*"


def _create_kms_key(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    kms = aws.client("kms")
    create: dict[str, Any] = {"Policy": json.dumps(props["KeyPolicy"])} if "KeyPolicy" in props else {}
    if "Description" in props:
        create["Description"] = props["Description"]
    metadata = kms.create_key(**create)["KeyMetadata"]
    if props.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    stack.refs[name] = metadata["KeyId"]
    stack.attributes[(name, "Arn")] = metadata["Arn"]
    stack.attributes[(name, "KeyId")] = metadata["KeyId"]


def _create_kms_alias(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    aws.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
    stack.refs[name] = props["AliasName"]


def _create_topic(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    topic_name = props.get("TopicName") or f"{stack.stack_name}-{name}"
    attributes = {key: str(props[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in props}
    arn = aws.client("sns").create_topic(Name=topic_name, Attributes=attributes)["TopicArn"]
    stack.refs[name] = arn
    stack.attributes[(name, "TopicArn")] = arn
    stack.attributes[(name, "TopicName")] = topic_name


def _create_topic_policy(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    """The policy on each of its topics (moto stores it; nothing publishes locally)."""
    for topic_arn in props["Topics"]:
        aws.client("sns").set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
        )
    stack.refs[name] = ",".join(props["Topics"])


def _create_subscription(stack: LocalStack, name: str, props: dict[str, Any]) -> None:
    arn = aws.client("sns").subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"]
    )
    stack.refs[name] = arn["SubscriptionArn"]


# Types moto cannot run: left out locally, and said so (the tests query the record archive with DuckDB instead).
NOT_LOCAL: dict[str, str] = {
    "AWS::Glue::Database": "Glue and Athena do not run locally",
    "AWS::Glue::Table": "Glue and Athena do not run locally",
    "AWS::Athena::WorkGroup": "Glue and Athena do not run locally",
}

# Types left out locally as a whole, said once per type however many the template has: CloudWatch does not evaluate
# alarms or draw dashboards locally, and the functions' metrics are EMF lines on the console, not in moto.
NOT_LOCAL_TYPES: dict[str, str] = {
    "AWS::CloudWatch::Alarm": "alarms are evaluated by CloudWatch only; locally `chargelog metrics` shows the metrics "
    "they read",
    "AWS::CloudWatch::Dashboard": "dashboards are drawn by CloudWatch only; locally `chargelog metrics` shows their "
    "metrics",
}

CREATORS: dict[str, Callable[[LocalStack, str, dict[str, Any]], None]] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::S3::Bucket": _create_bucket,
    "AWS::S3::BucketPolicy": _create_bucket_policy,
    "AWS::SQS::Queue": _create_queue,
    "AWS::SQS::QueuePolicy": _create_queue_policy,
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::Logs::LogGroup": _create_log_group,
    "AWS::KMS::Key": _create_kms_key,
    "AWS::KMS::Alias": _create_kms_alias,
    "AWS::SNS::Topic": _create_topic,
    "AWS::SNS::TopicPolicy": _create_topic_policy,
    "AWS::SNS::Subscription": _create_subscription,
}


def provision(
    template: Mapping[str, Any],
    stack_name: str,
    region: str,
    parameter_overrides: Mapping[str, Any] | None = None,
) -> LocalStack:
    """Create every resource of a type in CREATORS whose Condition (if any) holds, in dependency order, against
    AWS_ENDPOINT_URL."""
    parameters = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()} | dict(
        parameter_overrides or {}
    )
    stack = LocalStack(
        stack_name=stack_name, region=region, parameters=parameters, conditions=dict(template.get("Conditions", {}))
    )
    resolver = stack.resolver()
    pending = {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] in CREATORS and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    }
    stack.local_omissions.extend(
        f"{name}: {resource['Type']} ({NOT_LOCAL[resource['Type']]})"
        for name, resource in template["Resources"].items()
        if resource["Type"] in NOT_LOCAL
    )
    for resource_type, reason in NOT_LOCAL_TYPES.items():
        count = sum(1 for resource in template["Resources"].values() if resource["Type"] == resource_type)
        if count:
            stack.local_omissions.append(f"{resource_type}, {count} of them ({reason})")
    while pending:
        ready = [
            name
            for name, resource in pending.items()
            if not ((_dependencies(resource.get("Properties", {})) | _depends_on(resource)) & pending.keys())
        ]
        if not ready:
            raise ValueError(f"Circular references between {sorted(pending)}")
        for name in ready:
            resource = pending.pop(name)
            properties = stack.resolver().resolve(resource.get("Properties", {}))
            CREATORS[resource["Type"]](stack, name, properties)
            stack.types[name] = resource["Type"]
            stack.tags[name] = _tags(properties)
    return stack


def function_environment(template: Mapping[str, Any], stack: LocalStack) -> dict[str, str]:
    """The environment the template gives its functions, resolved against the local stack.

    Locally every function runs in one process, so they must agree on each variable (keep them in
    Globals); anything that is not a local resource (the API itself, say) resolves to a placeholder.
    """
    from chargelog_local.template import functions

    resolver = stack.resolver(on_missing=lambda name: f"local-{name}")
    environment: dict[str, str] = {}
    for spec in functions(template):
        for key, value in spec.environment.items():
            resolved = str(resolver.resolve(value))
            if environment.get(key, resolved) != resolved:
                raise ValueError(f"Functions disagree on {key}; the local stack runs them in one process")
            environment[key] = resolved
    return environment
