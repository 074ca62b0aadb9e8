"""The README's Python examples run as written (on moto), so a newcomer's first paste works."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TABLE_NAME, moto_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    assert f'DynamoDBFlowSignalStore("{TABLE_NAME}")' in blocks[0]
    with moto_table():  # its table is the one the first example names
        for block in blocks:
            exec(compile(block, str(README), "exec"), {})
