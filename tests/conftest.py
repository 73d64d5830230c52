from __future__ import annotations

import pytest

from tests.fakes import FakeTimers


@pytest.fixture
def timers() -> FakeTimers:
    return FakeTimers()
