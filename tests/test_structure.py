"""The package's shape: imports run one way, the renamed names and their deprecated
aliases, the client-default sentinel, and the transport seam (no sockets)."""

from __future__ import annotations

import ast
import pathlib
import warnings

import msgspec
import pytest
from conftest import API_KEY

import asyncvox
from asyncvox import retry
from asyncvox.testing import DemoServer, MockTransport, envelope, synth_call

PACKAGE = pathlib.Path(asyncvox.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Every intra-package import (lazy ones included) of every module: module -> targets."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
                candidates = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                candidates = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    return graph


def test_the_package_has_no_import_circle_lazy_or_not() -> None:
    graph = _imports()
    # The package's __init__ re-exports everything and subpackages import their parents'
    # siblings through it only for names; the rule is about the modules themselves.
    graph.pop("asyncvox", None)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "asyncvox" or nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("asyncvox.models", "asyncvox.errors"),
        ("asyncvox.errors", "asyncvox.request"),
        ("asyncvox.limits", "asyncvox.request"),
        ("asyncvox.retry", "asyncvox.request"),
        ("asyncvox._decode", "asyncvox.request"),
        ("asyncvox.transport", "asyncvox.request"),
        ("asyncvox.request", "asyncvox.stream"),
        ("asyncvox.stream", "asyncvox.client"),
    ],
)
def test_imports_run_downward(lower: str, higher: str) -> None:
    """A lower layer never imports a higher one, directly or through another module."""
    graph = _imports()
    seen: set[str] = set()
    todo = [lower]
    while todo:
        module = todo.pop()
        for nxt in graph.get(module, ()):
            if nxt not in seen and nxt != "asyncvox":
                seen.add(nxt)
                todo.append(nxt)
    assert higher not in seen


def test_every_public_name_is_documented_and_lives_in_a_public_module() -> None:
    for name in asyncvox.__all__:
        obj = getattr(asyncvox, name)
        if name.startswith("__") or isinstance(obj, str | float | int) or obj is asyncvox.USE_CLIENT_DEFAULT:
            continue
        assert obj.__doc__, f"asyncvox.{name} has no docstring"
        module = getattr(obj, "__module__", "asyncvox")
        assert not any(part.startswith("_") for part in module.split(".")[1:]) or name in {
            "set_testing",
            "is_testing",
        }, f"asyncvox.{name} lives in private module {module}"


# -- renames and their deprecated aliases -----------------------------------------------


async def test_get_calls_is_a_warning_alias_of_fetch_calls(server: DemoServer) -> None:
    async with asyncvox.Client(API_KEY, server.base_url) as client:
        with pytest.warns(DeprecationWarning, match="fetch_calls"):
            old = await client.get_calls(["a", "b"])
        new = await client.fetch_calls(["a", "b"])
    assert [o.call_id for o in old] == [o.call_id for o in new] == ["a", "b"]
    assert all(o.found for o in old)


def test_outcome_url_is_a_warning_alias_of_dashboard_url() -> None:
    outcome = asyncvox.FetchOutcome("c", None, None, 1, None, "https://fixa.dev/observe/c")
    assert outcome.dashboard_url == "https://fixa.dev/observe/c"
    with pytest.warns(DeprecationWarning, match="dashboard_url"):
        assert outcome.url == "https://fixa.dev/observe/c"


def test_the_testing_switch_lives_at_the_top_and_the_old_names_warn() -> None:
    before = asyncvox.is_testing()
    with asyncvox.set_testing(not before):
        assert asyncvox.is_testing() is (not before)
        assert retry.is_testing() is (not before)
    assert asyncvox.is_testing() is before
    with pytest.warns(DeprecationWarning, match="asyncvox.set_testing"), retry.testing(not before):
        assert asyncvox.is_testing() is (not before)
    assert asyncvox.is_testing() is before
    with pytest.warns(DeprecationWarning, match="asyncvox.set_testing"):
        retry.set_testing(before)


def test_bad_settings_are_configuration_errors_that_name_the_parameter() -> None:
    with pytest.raises(asyncvox.ConfigurationError, match="initial_wait"):
        asyncvox.RetryPolicy(initial_wait=-1)
    with pytest.raises(asyncvox.ConfigurationError, match="max_retry_after"):
        asyncvox.RetryPolicy(max_retry_after=-1)
    with pytest.raises(asyncvox.ConfigurationError, match="min_per_second"):
        asyncvox.RetryBudget(min_per_second=-1)
    with pytest.raises(asyncvox.ConfigurationError, match="total_timeout"):
        asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", total_timeout=0)
    client = asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1")
    with pytest.raises(asyncvox.ConfigurationError, match="iter_calls concurrency"):
        client.iter_calls(["a"], concurrency=0)
    # still ValueErrors, as they were
    with pytest.raises(ValueError, match="jitter"):
        asyncvox.RetryPolicy(jitter=2)


def test_max_retries_override_keeps_every_other_policy_field() -> None:
    policy = asyncvox.RetryPolicy(initial_wait=0.25, max_wait=3.0, jitter=0.1, max_retry_after=7.0)
    client = asyncvox.Client(API_KEY, "http://127.0.0.1:9/v1", retry=policy, max_retries=1)
    assert client.retry_policy == asyncvox.RetryPolicy(
        max_retries=1, initial_wait=0.25, max_wait=3.0, jitter=0.1, max_retry_after=7.0
    )


# -- the transport seam: no sockets ------------------------------------------------------


def _answer_found(url: str) -> asyncvox.Response:
    call_id = url.rsplit("/", 1)[-1]
    return asyncvox.Response(200, envelope(synth_call(call_id, turns=2)))


async def test_per_call_total_timeout_none_means_no_limit_not_the_default() -> None:
    mock = MockTransport(_answer_found)
    client = asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, timeout=30, total_timeout=5)
    async with client as c:
        await c.fetch("default")  # the client's 5 s < the 30 s attempt timeout: cut at 5 s
        await c.fetch("none", total_timeout=None)  # no limit: the attempt's own timeout
        await c.fetch("own", total_timeout=2)
    default, none, own = mock.time_limits
    assert default is not None and 4 < default <= 5
    assert none is None
    assert own is not None and 1 < own <= 2


async def test_the_request_path_over_a_mock_transport_retries_and_counts() -> None:
    answers = {"flaky": [asyncvox.Response(503, b'{"success":false,"error":"busy"}')]}

    def handler(url: str) -> asyncvox.Response:
        queue = answers.get(url.rsplit("/", 1)[-1])
        if queue:
            return queue.pop(0)
        if url.endswith("/drop"):
            raise asyncvox.APIConnectionError("connection failed: reset")
        return _answer_found(url)

    mock = MockTransport(handler)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock, max_retries=2) as client:
        flaky = await client.fetch("flaky")
        dropped = await client.fetch("drop")
        batch = await client.fetch_calls(["x", "flaky", "y"])
    assert flaky.found and flaky.attempts == 2
    assert isinstance(dropped.error, asyncvox.APIConnectionError)
    assert dropped.attempts == 3 and dropped.error.call_id == "drop"
    assert "call_id='drop'" in str(dropped.error)
    assert [o.found for o in batch] == [True, True, True]
    assert mock.closed


async def test_fetched_records_are_named_values() -> None:
    from asyncvox.request import Fetched

    assert msgspec.structs.fields(Fetched)[0].name == "call_id"
    mock = MockTransport(_answer_found)
    async with asyncvox.Client(API_KEY, "http://api.test/v1", transport=mock) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            outcome = await client.fetch("named")
    assert outcome.found and outcome.raw is not None and outcome.dashboard_url is not None
