"""Fixtures for the unit tests that read real processes."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def sleeper():
    """A `sleep 60` child of ours, killed and reaped after the test."""
    child = subprocess.Popen(["sleep", "60"])
    yield child
    child.kill()
    child.wait()
