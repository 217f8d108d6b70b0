"""The sandbox tests need bwrap able to build namespaces here; they are skipped, saying why, only if it cannot."""

import pytest

from helpers.sandbox import bwrap_problem

PROBLEM = bwrap_problem()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if PROBLEM is None:
        return
    for item in items:
        if "tests/sandbox/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=PROBLEM))
