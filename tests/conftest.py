"""Every test writes reid's caches (synthetic sets, decoded images) under one temporary folder, never ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _reid_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REID_CACHE", str(tmp_path_factory.mktemp("reid-cache-session")))
        yield
