"""The template's alarms, alarm topic, dashboard and log groups, checked against what the code writes.

An alarm on a metric nobody writes never fires, and CloudWatch accepts it without a word; so every alarm's and
every dashboard widget's metric is looked up: chargelog's own in the metric catalogue (``chargelog.metric_names``,
which the code that emits reads too), AWS's among the metrics and dimensions each service publishes, with the
dimension values pointing at resources of this template. The metric-math expressions are evaluated on sample
values, so a wrong unit or a wrong comparison fails here rather than on a quiet night.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chargelog.metric_names import NAMESPACE, MetricSpec, catalog
from chargelog.vendors import VENDORS
from chargelog_local.template import TEMPLATE_PATH, load_template
from markdown_anchors import heading_anchors

TEMPLATE = load_template(TEMPLATE_PATH)
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE["Globals"]["Function"]
ENVIRONMENT: dict[str, Any] = GLOBAL_FUNCTION["Environment"]["Variables"]
OPERATIONS_DOC = TEMPLATE_PATH.parent / "docs" / "operations.md"
CATALOG = catalog()

TREAT_MISSING_DATA = {"breaching", "notBreaching", "ignore", "missing"}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def _of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r.get("Properties", {}) for name, r in RESOURCES.items() if r["Type"] == resource_type}


ALARMS = _of_type("AWS::CloudWatch::Alarm")
FUNCTIONS = _of_type("AWS::Serverless::Function")
QUEUES = _of_type("AWS::SQS::Queue")
TABLES = _of_type("AWS::DynamoDB::Table")
API_NAMES = {
    json.dumps(props["Name"], sort_keys=True): name for name, props in _of_type("AWS::Serverless::Api").items()
}

# The AWS metrics the alarms and the dashboard may use: (namespace, metric) -> the dimension sets it is published
# with, each dimension -> the kind of template resource (or parameter) its value must name. From the services' metric
# references: SQS (QueueName), Lambda (FunctionName), API Gateway REST APIs (ApiName, Stage), DynamoDB (TableName,
# and GlobalSecondaryIndexName for an index's own throttle events).
_QUEUE = {"QueueName": "queue"}
_FUNCTION = {"FunctionName": "function"}
_REST_API = {"ApiName": "api", "Stage": "stage"}
_TABLE_EVENTS = [{"TableName": "table"}, {"TableName": "table", "GlobalSecondaryIndexName": "index"}]
AWS_METRICS: dict[tuple[str, str], list[dict[str, str]]] = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): [_QUEUE],
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): [_QUEUE],
    ("AWS/Lambda", "Errors"): [_FUNCTION],
    ("AWS/Lambda", "Throttles"): [_FUNCTION],
    ("AWS/Lambda", "Duration"): [_FUNCTION],
    ("AWS/ApiGateway", "5XXError"): [_REST_API],
    ("AWS/ApiGateway", "Latency"): [_REST_API],
    ("AWS/DynamoDB", "ReadThrottleEvents"): _TABLE_EVENTS,
    ("AWS/DynamoDB", "WriteThrottleEvents"): _TABLE_EVENTS,
}


# ---------------------------------------------------------------------------------------------- helpers


def _metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads: {Namespace, MetricName, Dimensions: [{Name, Value}]}."""
    if "MetricName" in alarm:
        return [{key: alarm.get(key, []) for key in ("Namespace", "MetricName", "Dimensions")}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def _names_resource(value: Any, kind: str, index: str | None = None) -> bool:
    """Whether a dimension value names a resource of this template of the given kind."""
    if kind == "queue":
        return isinstance(value, dict) and value.get("Fn::GetAtt", [None])[0] in QUEUES
    if kind == "function":
        return isinstance(value, dict) and value.get("Ref") in FUNCTIONS
    if kind == "table":
        return isinstance(value, dict) and value.get("Ref") in TABLES
    if kind == "stage":
        return value == {"Ref": "Stage"}
    if kind == "api":
        return json.dumps(value, sort_keys=True) in API_NAMES
    if kind == "index":
        indexes = {i["IndexName"] for table in TABLES.values() for i in table.get("GlobalSecondaryIndexes", [])}
        return value in indexes
    raise AssertionError(kind)


def _metric_problems(namespace: str, name: str, dimensions: dict[str, Any]) -> list[str]:
    """Why a metric (as an alarm or widget names it) is not one somebody writes, or [] if it is."""
    if namespace == NAMESPACE:
        spec: MetricSpec | None = CATALOG.get(name)
        if spec is None:
            return [f"{name} is not in chargelog.metric_names.catalog()"]
        problems = []
        if set(dimensions) != set(spec.dimensions):
            problems.append(f"{name}: dimensions {sorted(dimensions)}, the catalogue says {list(spec.dimensions)}")
        if "service" in dimensions and dimensions["service"] != ENVIRONMENT["POWERTOOLS_SERVICE_NAME"]:
            problems.append(f"{name}: service {dimensions['service']!r} is not POWERTOOLS_SERVICE_NAME")
        if "vendor" in dimensions and dimensions["vendor"] not in VENDORS:
            problems.append(f"{name}: vendor {dimensions['vendor']!r} is not a vendor")
        return problems
    dimension_sets = AWS_METRICS.get((namespace, name))
    if dimension_sets is None:
        return [f"{namespace} {name} is not a metric these checks know"]
    matching = [d for d in dimension_sets if set(d) == set(dimensions)]
    if not matching:
        return [f"{namespace} {name}: dimensions {sorted(dimensions)} are none of {dimension_sets}"]
    return [
        f"{namespace} {name}: {dimension} = {value!r} names no {matching[0][dimension]} of this template"
        for dimension, value in dimensions.items()
        if not _names_resource(value, matching[0][dimension])
    ]


def _expression_text(expression: Any) -> str:
    """A metric-math expression with the parameters it substitutes at their defaults."""
    if isinstance(expression, dict):
        (text,) = expression.values()
        return re.sub(r"\$\{(\w+)\}", lambda m: str(PARAMETERS[m.group(1)]["Default"]), text)
    return str(expression)


def _evaluate(alarm: dict[str, Any], values: dict[str, float | None]) -> float | None:
    """The value an alarm compares with its threshold, given one datapoint (or None: no datapoint) per metric id."""
    returned = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
    assert len(returned) == 1, "a metric-math alarm returns one series"
    (result,) = returned
    if "MetricStat" in result:
        return values[result["Id"]]
    names: dict[str, Any] = {
        "FILL": lambda value, fill: fill if value is None else value,
        "IF": lambda condition, when_true, when_false: when_true if condition else when_false,
        "SUM": lambda items: None if all(i is None for i in items) else sum(i for i in items if i is not None),
    }
    try:
        return float(eval(_expression_text(result["Expression"]), {"__builtins__": {}}, names | values))  # noqa: S307
    except TypeError:  # arithmetic on a missing datapoint: the expression has no value either
        return None


def _breaches(alarm: dict[str, Any], values: dict[str, float | None]) -> bool | None:
    """Whether the datapoint breaches the alarm's threshold (None: no datapoint, TreatMissingData decides)."""
    value = _evaluate(alarm, values)
    if value is None:
        return None
    threshold = alarm["Threshold"]
    if isinstance(threshold, dict):
        threshold = PARAMETERS[threshold["Ref"]]["Default"]
    return COMPARISONS[alarm["ComparisonOperator"]](value, float(threshold))


def _alarms_on(namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    return {
        name: alarm
        for name, alarm in ALARMS.items()
        if any(m["Namespace"] == namespace and m["MetricName"] == metric for m in _metric_stats(alarm))
    }


def _dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}


def _vendor_alarm(metric: str, vendor: str) -> dict[str, Any]:
    (alarm,) = [
        a for a in _alarms_on(NAMESPACE, metric).values() if _dimensions(_metric_stats(a)[0]).get("vendor") == vendor
    ]
    return alarm


# ---------------------------------------------------------------------------------------------- every alarm


def test_the_template_has_the_alarms_the_operations_need() -> None:
    assert len(ALARMS) >= 30, sorted(ALARMS)


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_each_alarm_reads_metrics_somebody_writes(name: str) -> None:
    alarm = ALARMS[name]
    metrics = _metric_stats(alarm)
    assert metrics, name
    problems = [
        problem
        for metric in metrics
        for problem in _metric_problems(metric["Namespace"], metric["MetricName"], _dimensions(metric))
    ]
    assert problems == []


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_each_alarm_tells_the_topic_when_it_fires_and_when_it_recovers(name: str) -> None:
    alarm = ALARMS[name]
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm.get("ActionsEnabled", True) is True


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_each_alarm_decides_what_missing_data_means_and_names_its_runbook(name: str) -> None:
    alarm = ALARMS[name]
    assert alarm["TreatMissingData"] in TREAT_MISSING_DATA
    assert alarm["ComparisonOperator"] in COMPARISONS
    runbook = re.search(r"docs/operations\.md#([\w-]+)", alarm["AlarmDescription"])
    assert runbook, f"{name}: its description names no runbook section"
    assert runbook.group(1) in heading_anchors(OPERATIONS_DOC.read_text(encoding="utf-8")), runbook.group(1)
    suffix = alarm["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
    assert f"`<stack>-{suffix}`" in OPERATIONS_DOC.read_text(encoding="utf-8"), f"{suffix} is not in the alarms table"
    threshold = alarm["Threshold"]
    if isinstance(threshold, dict):
        assert PARAMETERS[threshold["Ref"]]["Type"] == "Number"
    if "Metrics" in alarm:
        assert sum(1 for q in alarm["Metrics"] if q.get("ReturnData", True)) == 1
        assert all(
            q["MetricStat"]["Period"] == alarm["Metrics"][0]["MetricStat"]["Period"]
            for q in alarm["Metrics"]
            if "MetricStat" in q
        )
    assert int(alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])) <= int(alarm["EvaluationPeriods"])


def test_alarm_names_are_unique() -> None:
    names = [json.dumps(a["AlarmName"]) for a in ALARMS.values()]
    assert len(names) == len(set(names))


# ---------------------------------------------------------------------------------------------- what is covered


def _dead_letter_queues() -> set[str]:
    return {q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for q in QUEUES.values() if "RedrivePolicy" in q}


def _work_queues() -> set[str]:
    worker_events = FUNCTIONS["WorkerFunction"]["Events"].values()
    return {e["Properties"]["Queue"]["Fn::GetAtt"][0] for e in worker_events if e["Type"] == "SQS"}


def test_every_dead_letter_queue_alarms_on_its_first_message() -> None:
    watched = {}
    for alarm in _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible").values():
        queue = _dimensions(_metric_stats(alarm)[0])["QueueName"]["Fn::GetAtt"][0]
        watched[queue] = alarm
    assert (
        set(watched)
        == _dead_letter_queues()
        == {
            "WorkDeadLetterQueue",
            "ExportDeadLetterQueue",
            "DiagnosticsUploadDeadLetterQueue",
            "AlertDeadLetterQueue",
        }
    )
    for alarm in watched.values():
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Maximum",
            0,
            "GreaterThanThreshold",
        )
        assert alarm["TreatMissingData"] == "notBreaching"  # SQS stops reporting an idle (empty) queue


def test_every_work_queue_alarms_when_its_oldest_job_waited_twice_the_schedule() -> None:
    alarms = _alarms_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
    watched = {_dimensions(_metric_stats(a)[0])["QueueName"]["Fn::GetAtt"][0]: a for a in alarms.values()}
    assert set(watched) == _work_queues()
    schedule_seconds = PARAMETERS["ScheduleMinutes"]["Default"] * 60
    for alarm in watched.values():
        assert _breaches(alarm, {"age": 2 * schedule_seconds + 30}) is True
        assert _breaches(alarm, {"age": 2 * schedule_seconds - 30}) is False
        # AWS's recommendation for the age of the oldest message: the maximum, 15 of 15 one-minute periods.
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (15, 15)


def test_the_schedule_is_the_parameter_the_age_alarms_divide_by() -> None:
    schedule = FUNCTIONS["DispatcherFunction"]["Events"]["CollectSchedule"]["Properties"]["Schedule"]
    condition, one, many = schedule["Fn::If"]
    assert TEMPLATE["Conditions"][condition] == {"Fn::Equals": [{"Ref": "ScheduleMinutes"}, 1]}
    assert (one, many) == ("rate(1 minute)", {"Fn::Sub": "rate(${ScheduleMinutes} minutes)"})


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_vendor_alarms_when_its_lag_passes_lag_alarm_minutes(vendor: str) -> None:
    alarm = _vendor_alarm("CollectorLagSeconds", vendor)
    assert alarm["Threshold"] == {"Ref": "LagAlarmMinutes"}
    assert PARAMETERS["LagAlarmMinutes"]["Default"] == 60
    assert _breaches(alarm, {"lag": 61 * 60}) is True
    assert _breaches(alarm, {"lag": 59 * 60}) is False
    assert _breaches(alarm, {"lag": None}) is None
    assert alarm["TreatMissingData"] == "notBreaching"  # a vendor without sources has no lag
    (lag,) = _metric_stats(alarm)
    assert CATALOG[lag["MetricName"]].unit == "Seconds"


@pytest.mark.parametrize("vendor", VENDORS)
def test_each_vendor_alarms_on_its_error_rate_counting_no_error_datapoint_as_none(vendor: str) -> None:
    alarm = _vendor_alarm("VendorErrors", vendor)
    assert {m["MetricName"] for m in _metric_stats(alarm)} == {"VendorErrors", "VendorRequests"}
    assert all(_dimensions(m)["vendor"] == vendor for m in _metric_stats(alarm))
    assert alarm["Threshold"] == {"Ref": "VendorErrorAlarmPercent"}
    percent = PARAMETERS["VendorErrorAlarmPercent"]["Default"]
    assert _breaches(alarm, {"errors": percent + 5, "requests": 100}) is True
    assert _breaches(alarm, {"errors": percent - 5, "requests": 100}) is False
    assert _breaches(alarm, {"errors": None, "requests": 100}) is False  # error counts are written only when not 0
    assert _breaches(alarm, {"errors": None, "requests": None}) is None


def test_every_function_alarms_on_its_errors_and_throttles() -> None:
    for metric in ("Errors", "Throttles"):
        watched = {
            _dimensions(_metric_stats(a)[0])["FunctionName"]["Ref"] for a in _alarms_on("AWS/Lambda", metric).values()
        }
        assert watched == set(FUNCTIONS), metric


def test_both_apis_alarm_on_their_5xx_rate() -> None:
    alarms = _alarms_on("AWS/ApiGateway", "5XXError")
    watched = {
        API_NAMES[json.dumps(_dimensions(_metric_stats(a)[0])["ApiName"], sort_keys=True)] for a in alarms.values()
    }
    assert watched == {"Api", "UploadApi"}
    percent = PARAMETERS["ApiServerErrorAlarmPercent"]["Default"]
    assert percent == 5  # AWS's recommended 0.05 average
    for alarm in alarms.values():
        (metric,) = [q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q]
        assert metric["Stat"] == "Average"  # 5XXError's average is the share of 5xx responses
        assert _breaches(alarm, {"server_errors": 0.06}) is True
        assert _breaches(alarm, {"server_errors": 0.04}) is False
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 3)


def test_the_table_and_each_of_its_indexes_alarm_on_throttled_reads_and_writes() -> None:
    (table_name,) = TABLES
    indexes = {i["IndexName"] for i in TABLES[table_name]["GlobalSecondaryIndexes"]}
    alarms = {**_alarms_on("AWS/DynamoDB", "ReadThrottleEvents"), **_alarms_on("AWS/DynamoDB", "WriteThrottleEvents")}
    watched = {
        (m["MetricName"], _dimensions(m).get("GlobalSecondaryIndexName"))
        for alarm in alarms.values()
        for m in _metric_stats(alarm)
    }
    assert watched == {
        (metric, index) for metric in ("ReadThrottleEvents", "WriteThrottleEvents") for index in indexes | {None}
    }
    (alarm,) = alarms.values()
    quiet: dict[str, float | None] = {q["Id"]: None for q in alarm["Metrics"] if "MetricStat" in q}
    assert not _breaches(alarm, quiet)  # no throttle event anywhere: 0, or no datapoint (not breaching)
    one_index = dict(quiet, **{next(iter(quiet)): 1.0})
    assert _breaches(alarm, one_index) is True


def test_the_dispatcher_silent_alarm_fires_on_no_jobs_while_sources_are_enabled_or_on_no_run() -> None:
    alarms = _alarms_on(NAMESPACE, "JobsEnqueued")
    (alarm,) = alarms.values()
    assert {m["MetricName"] for m in _metric_stats(alarm)} == {"JobsEnqueued", "SourcesEnabled"}
    assert _breaches(alarm, {"jobs": 0, "enabled": 3}) is True
    assert _breaches(alarm, {"jobs": 3, "enabled": 3}) is False
    assert _breaches(alarm, {"jobs": 0, "enabled": 0}) is False  # nothing to collect
    assert alarm["TreatMissingData"] == "breaching"  # both are written every run: no datapoint, no run
    (period,) = {q["MetricStat"]["Period"] for q in alarm["Metrics"] if "MetricStat" in q}
    assert period * alarm["DatapointsToAlarm"] == 30 * 60


# ---------------------------------------------------------------------------------------------- the topic


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    (topic_name, topic) = next(iter(_of_type("AWS::SNS::Topic").items()))
    assert topic_name == "AlarmTopic"
    key = topic["KmsMasterKeyId"]
    assert key != "alias/aws/sns"  # CloudWatch cannot publish to a topic under the AWS-managed key
    key_props = RESOURCES[key["Ref"]]["Properties"]
    assert key_props["EnableKeyRotation"] is True
    (statement,) = [
        s for s in key_props["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def _topic_policy(topic: str) -> dict[str, Any]:
    (policy,) = [p for p in _of_type("AWS::SNS::TopicPolicy").values() if p["Topics"] == [{"Ref": topic}]]
    return policy


def _subscriptions(topic: str) -> list[dict[str, Any]]:
    return [
        r
        for r in RESOURCES.values()
        if r["Type"] == "AWS::SNS::Subscription" and r["Properties"]["TopicArn"] == {"Ref": topic}
    ]


def test_only_this_accounts_alarms_publish_and_only_over_tls() -> None:
    policy = _topic_policy("AlarmTopic")
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudwatch.amazonaws.com"}]
    (allow,) = allows
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alarm_email_subscribes_an_address_only_when_given() -> None:
    (subscription,) = _subscriptions("AlarmTopic")
    assert subscription["Condition"] == "HasAlarmEmail"
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    pattern = PARAMETERS["AlarmEmail"]["AllowedPattern"]
    assert PARAMETERS["AlarmEmail"]["Default"] == ""
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "ops@example.com")
    assert not re.fullmatch(pattern, "not an address")


# ---------------------------------------------------------------------------------------------- log groups


def test_every_function_writes_to_a_log_group_of_its_own_kept_log_retention_days() -> None:
    groups = {name: props["LoggingConfig"]["LogGroup"]["Ref"] for name, props in FUNCTIONS.items()}
    assert len(set(groups.values())) == len(FUNCTIONS)
    for function, group in groups.items():
        assert RESOURCES[group]["Type"] == "AWS::Logs::LogGroup", function
    for name, group in _of_type("AWS::Logs::LogGroup").items():
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


# ---------------------------------------------------------------------------------------------- the dashboard


def _dashboard_body() -> dict[str, Any]:
    """The dashboard's JSON with each ${...} replaced: a Number parameter by its default, anything else by a marker
    naming what it refers to ("ref:Logical" or "ref:Logical.Attribute")."""
    (dashboard,) = _of_type("AWS::CloudWatch::Dashboard").values()
    text = dashboard["DashboardBody"]["Fn::Sub"]

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        parameter = PARAMETERS.get(name)
        if parameter is not None and parameter["Type"] == "Number":
            return str(parameter["Default"])
        assert name in PARAMETERS or name.startswith("AWS::") or name.split(".")[0] in RESOURCES, name
        return f"ref:{name}"

    return dict(json.loads(re.sub(r"\$\{([^}]+)\}", replace, text)))


def _dashboard_metrics() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(namespace, metric, dimensions, options) of every metric the dashboard draws (expressions left out)."""
    for widget in _dashboard_body()["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):  # an expression over the others
                continue
            options = line[-1] if isinstance(line[-1], dict) else {}
            names = line[: -1 if options else None]
            namespace, metric, *pairs = names
            yield namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True)), options


def _as_template_value(value: str) -> Any:
    """A dashboard marker as the intrinsic it stands for, for the same checks the alarms get."""
    if value == "ref:Stage":
        return {"Ref": "Stage"}
    if value == "ref:AWS::StackName":
        return {"Ref": "AWS::StackName"}
    if value == "ref:AWS::StackName-uploads":
        return {"Fn::Sub": "${AWS::StackName}-uploads"}
    if value.startswith("ref:") and "." in value:
        return {"Fn::GetAtt": value.removeprefix("ref:").split(".", 1)}
    if value.startswith("ref:"):
        return {"Ref": value.removeprefix("ref:")}
    return value


def test_the_dashboard_body_is_json_and_draws_only_metrics_somebody_writes() -> None:
    body = _dashboard_body()
    assert body["widgets"]
    problems = []
    for namespace, metric, dimensions, _ in _dashboard_metrics():
        dimensions = {k: _as_template_value(v) if isinstance(v, str) else v for k, v in dimensions.items()}
        problems += _metric_problems(namespace, metric, dimensions)
    assert problems == []


def test_the_dashboard_shows_what_an_operator_looks_at_first() -> None:
    drawn = {(namespace, metric) for namespace, metric, _, _ in _dashboard_metrics()}
    assert {
        (NAMESPACE, "CollectorLagSeconds"),
        (NAMESPACE, "RecordsStored"),
        (NAMESPACE, "VendorErrors"),
        (NAMESPACE, "VendorThrottles"),
        (NAMESPACE, "UploadsStored"),
        (NAMESPACE, "UploadsRejected"),
        (NAMESPACE, "UploadBytes"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "5XXError"),
    } <= drawn
    vendors_drawn = {d["vendor"] for ns, m, d, _ in _dashboard_metrics() if m == "CollectorLagSeconds"}
    assert vendors_drawn == set(VENDORS)


def test_the_duration_widget_divides_by_each_functions_own_timeout() -> None:
    (widget,) = [w for w in _dashboard_body()["widgets"] if "timeout" in w["properties"]["title"]]
    lines = widget["properties"]["metrics"]
    functions = {line[-1]["id"]: line[3].removeprefix("ref:") for line in lines if not isinstance(line[0], dict)}
    assert set(functions.values()) == set(FUNCTIONS)
    for line in lines:
        if not isinstance(line[0], dict):
            continue
        match = re.fullmatch(r"100 \* (\w+) / (\d+)", line[0]["expression"])
        assert match, line
        function = functions[match.group(1)]
        timeout = FUNCTIONS[function].get("Timeout", GLOBAL_FUNCTION["Timeout"])
        assert int(match.group(2)) == timeout * 1000, function


# ---------------------------------------------------------------------------------------------- the cost in the docs


def test_the_operations_doc_counts_the_custom_metrics_the_catalogue_makes() -> None:
    per_vendor = sum(1 for spec in CATALOG.values() if "vendor" in spec.dimensions)
    per_function = sum(1 for spec in CATALOG.values() if "function_name" in spec.dimensions)
    single = len(CATALOG) - per_vendor - per_function
    most = per_vendor * len(VENDORS) + single + per_function * len(FUNCTIONS)
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    stated = re.search(r"at most \*\*(\d+) custom metrics\*\*", text)
    assert stated, "docs/operations.md does not state how many custom metrics there can be"
    assert int(stated.group(1)) == most


def test_the_operations_doc_counts_the_alarm_metrics() -> None:
    metrics = sum(len(_metric_stats(alarm)) for alarm in ALARMS.values())
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    stated = re.search(r"(\d+) alarms reading \*\*(\d+) metrics\*\*", text)
    assert stated, "docs/operations.md does not state how many alarms and alarm metrics there are"
    assert (int(stated.group(1)), int(stated.group(2))) == (len(ALARMS), metrics)
