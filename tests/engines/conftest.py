"""Fixtures for the engine tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import ServerThread


@pytest.fixture
def llm(harness: ServerThread) -> Iterator[Any]:
    """The shared language model; settings a test changes are put back afterwards."""
    engine = harness.engines.llm
    saved = engine.config
    yield engine
    engine.config = saved
