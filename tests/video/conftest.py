"""Fixtures of the video tests: tiny benchmarks in their real layouts (built by ``video_fixtures``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_fixtures import make_mevis, make_revos, make_ytvos


@pytest.fixture
def ytvos_root(tmp_path) -> Path:
    make_ytvos(tmp_path)
    return tmp_path


@pytest.fixture
def mevis_root(tmp_path) -> Path:
    make_mevis(tmp_path)
    return tmp_path


@pytest.fixture
def revos_root(tmp_path) -> Path:
    make_revos(tmp_path)
    return tmp_path
