from __future__ import annotations

import pytest


@pytest.fixture
def rt(db_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
