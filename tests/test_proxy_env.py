"""The environment's proxy settings are honoured, resolved once per client."""

from __future__ import annotations

import pytest

import asyncvox
from asyncvox.transport import AiohttpTransport, env_proxy


@pytest.fixture(autouse=True)
def _clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_https_proxy_applies_to_an_https_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.invalid:3128")
    assert env_proxy("https://api.fixa.dev/v1") == "http://proxy.corp.invalid:3128"
    assert env_proxy("http://api.fixa.dev/v1") is None
    transport = asyncvox.Client("k", "https://api.fixa.dev/v1").transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.proxy == "http://proxy.corp.invalid:3128"
    assert transport.request_kwargs["proxy"] == "http://proxy.corp.invalid:3128"


def test_no_proxy_bypasses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "fixa.dev,localhost")
    assert env_proxy("https://api.fixa.dev/v1") is None


def test_no_proxy_configured_sends_directly() -> None:
    assert env_proxy("https://api.fixa.dev/v1") is None
    transport = asyncvox.Client("k", "https://api.fixa.dev/v1").transport
    assert isinstance(transport, AiohttpTransport)
    assert transport.proxy is None and "proxy" not in transport.request_kwargs
