"""The emulator's HTTP health endpoint (Microsoft's emulator serves GET /health on 5300)."""

from __future__ import annotations

import os
import urllib.request

import pytest


def test_health_endpoint_answers_200():
    url = os.environ.get("BUSDRAIN_SB_HEALTH_URL")
    if not url:
        pytest.fail("BUSDRAIN_SB_HEALTH_URL is not set (tests/conformance/run sets it)", pytrace=False)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
