"""AWS clients, created once per process.

boto3 reads ``AWS_ENDPOINT_URL`` (and the per-service ``AWS_ENDPOINT_URL_<SERVICE>``) itself, so the
same code talks to AWS when deployed and to moto's server locally.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
# botocore signs S3 requests with SigV4 but, unless told, presigns URLs with the legacy SigV2.
_SERVICE_CONFIG = {"s3": _CONFIG.merge(Config(signature_version="s3v4"))}
# The table's requests skip botocore's client-side parameter validation: their items and expressions are built by
# chargelog's own code from validated models, and DynamoDB validates every request itself (a bad one still fails,
# as a ValidationException). Checking each attribute of every item against the service model in Python was about a
# tenth of the worker's CPU when storing records (bench/collect.py, README "Collection throughput").
_TABLE_CONFIG = _CONFIG.merge(Config(parameter_validation=False))


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_SERVICE_CONFIG.get(service, _CONFIG))


@cache
def table(name: str) -> Any:
    return boto3.session.Session().resource("dynamodb", config=_TABLE_CONFIG).Table(name)


def reset() -> None:
    """Forget cached clients, Powertools' parameter providers included (after switching endpoints)."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    client.cache_clear()
    table.cache_clear()
    parameters.clear_caches()
    base.DEFAULT_PROVIDERS.clear()
