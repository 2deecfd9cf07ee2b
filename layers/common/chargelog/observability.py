"""Logger, Metrics and Tracer: created here once and imported everywhere."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
