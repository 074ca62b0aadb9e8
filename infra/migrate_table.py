"""Copy every row of one waiter table into another: how an existing table's rows move to the
table CloudFormation creates when a schema change replaces it (the local index
RunId-SignalName-local-index is one; docs/operations.md, Moving to a new table).

    python infra/migrate_table.py SOURCE TARGET [--endpoint URL] [--segments N]
    make migrate-table SOURCE=<old table> TARGET=<new table>

Rows are copied as they are (waiters, tombstones, early signals, approval links, with their
Ttl). A row the target already has is left alone: the functions have written it since they
moved to the target, so it is newer. Running it again copies only what is still missing. A
copied row resumes no task again: the notifier acts on changes of a row, not on its arrival.
"""

from __future__ import annotations

import argparse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from flowsignals.backends.dynamodb import DECISION_INDEX


def _client(endpoint: str | None) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": 10})
    return boto3.client("dynamodb", endpoint_url=endpoint, config=config)


def _has_decision_index(client: Any, table: str) -> bool:
    description = client.describe_table(TableName=table)["Table"]
    indexes = description.get("LocalSecondaryIndexes", [])
    return any(index["IndexName"] == DECISION_INDEX for index in indexes)


def _copy_segment(client: Any, source: str, target: str, segment: int, total: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    scan: dict[str, Any] = {
        "TableName": source,
        "ConsistentRead": True,
        "Segment": segment,
        "TotalSegments": total,
    }
    while True:
        page = client.scan(**scan)
        for item in page.get("Items", []):
            try:
                # A row the functions wrote to the target since the switch is newer: keep it.
                client.put_item(
                    TableName=target,
                    Item=item,
                    ConditionExpression="attribute_not_exists(RunId)",
                )
                counts["copied"] += 1
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                counts["already in the target"] += 1
        if "LastEvaluatedKey" not in page:
            return counts
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def migrate(client: Any, source: str, target: str, segments: int = 4) -> Counter[str]:
    """Copy ``source``'s rows into ``target`` (which has the current schema); the counts of
    rows copied and of rows the target already had."""
    if source == target:
        raise ValueError("the source and the target are the same table")
    if not _has_decision_index(client, target):
        raise ValueError(f"{target} has no index {DECISION_INDEX}: not the current schema")
    with ThreadPoolExecutor(max_workers=segments) as pool:
        parts = pool.map(
            lambda segment: _copy_segment(client, source, target, segment, segments),
            range(segments),
        )
        return sum(parts, Counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the table the rows are in (the replaced one)")
    parser.add_argument("target", help="the table they move to (the stack's WaiterTableName)")
    parser.add_argument("--endpoint", help="a DynamoDB endpoint (default: AWS's, by region)")
    parser.add_argument("--segments", type=int, default=4, help="parallel scan segments")
    arguments = parser.parse_args()
    counts = migrate(
        _client(arguments.endpoint), arguments.source, arguments.target, arguments.segments
    )
    print(
        f"{counts['copied']} rows copied from {arguments.source} to {arguments.target};"
        f" {counts['already in the target']} already there (kept)"
    )


if __name__ == "__main__":
    main()
