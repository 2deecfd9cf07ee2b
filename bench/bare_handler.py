"""Baseline for bench/coldstart.py: a bare Powertools + boto3 Lambda handler.

Module-level work is what every chargelog function pays at the least: import boto3 and Powertools,
create a Logger, Metrics and Tracer, and one DynamoDB client. The handler itself does nothing.
"""

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
dynamodb = boto3.client("dynamodb")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"ok": True}
