"""How `make test` spreads the suite over pytest-xdist workers rests on test ids: a worker is
sent tests by id, and reads a test's xdist group from it. These hold over every test collected
with this one (the whole suite under `make test`)."""

from __future__ import annotations

from collections import Counter

import pytest


def test_every_test_has_an_id_of_its_own(request: pytest.FixtureRequest) -> None:
    """Two tests with one id would run as one under xdist, the other never."""
    ids = Counter(item.nodeid for item in request.session.items)
    assert [nodeid for nodeid, count in ids.items() if count > 1] == []


def test_a_grouped_test_names_its_group_in_its_id(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` xdist sends the tests of one group to one worker by the group
    it reads from their ids; a group missing there spreads them over every worker."""
    if not request.config.getvalue("loadgroup"):
        pytest.skip("not under xdist's --dist loadgroup (-n 0): no groups to name")
    for item in request.session.items:
        for mark in item.iter_markers("xdist_group"):
            assert item.nodeid.endswith(f"@{mark.args[0]}"), item.nodeid
