"""Cold import time of each handler module against bare ``import boto3``: the median of fresh
interpreters, as a Lambda cold start pays it (before the first request).

    python infra/import_time.py [RUNS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys

# The API's five entry points live in flowsignals.lambdas.handlers; the stream's in the notifier.
HANDLER_MODULES = ("flowsignals.lambdas.handlers", "flowsignals.lambdas.notifier")
BASELINE = "boto3"


def median_import_seconds(module: str, runs: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, check=True, text=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)


def report(runs: int = 15) -> str:
    baseline = median_import_seconds(BASELINE, runs)
    lines = [f"cold import, median of {runs} fresh interpreters:"]
    lines.append(f"  import {BASELINE:34} {baseline * 1000:7.1f} ms   1.00x")
    for module in (*HANDLER_MODULES, "aws_xray_sdk.core", "flowsignals"):
        seconds = median_import_seconds(module, runs)
        lines.append(f"  import {module:34} {seconds * 1000:7.1f} ms   {seconds / baseline:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(int(sys.argv[1]) if len(sys.argv) > 1 else 15))
