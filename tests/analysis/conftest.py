"""The analysis tests share one store, built once per session by dockyard
(analysis_images.build_images); the analyses only read it."""

from __future__ import annotations

import os
import shutil

import pytest
from analysis_images import build_images

from dockyard.store import Store


@pytest.fixture(scope="session")
def analysis_store(tmp_path_factory, busybox_tar) -> Store:
    if os.geteuid() != 0 or not shutil.which("runc"):
        pytest.skip("needs root and runc to build images with RUN")
    return build_images(tmp_path_factory.mktemp("analysis"), busybox_tar)
