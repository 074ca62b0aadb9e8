"""What every function logs and measures with: Powertools' structured logger and EMF metrics,
created once per process.

Traces come from Lambda's own active tracing (``Tracing: Active`` in template.yaml): each
invocation's initialization and invocation segments, in X-Ray and its service map. The
functions do not load the X-Ray SDK (Powertools' Tracer): on a cold start it costs about 37 ms
of import (a fifth of ``import boto3``) and 0.2 ms a request, for a subsegment per AWS call
(README, Benchmarks)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="flowsignals")
metrics = Metrics(namespace="FlowSignals", service="flowsignals")
