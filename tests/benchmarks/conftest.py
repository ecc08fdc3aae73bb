"""The benchmark's own tests run only when asked for: ``pytest -m bench tests/benchmarks``.

``make test`` collects them and skips them: they check the benchmark's
machinery (proxy, load generator), not the product.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bench: the benchmark's own tests (pytest -m bench)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "bench" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark machinery: run with pytest -m bench")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)
