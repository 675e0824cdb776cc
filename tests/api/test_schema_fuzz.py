"""Schemathesis against the OpenAPI schema: every operation, valid and invalid data, and valid
data with one value made hostile (lone surrogates, NUL and control characters, NaN,
infinities, huge numbers and strings), with a real key, on Postgres and on SQLite; no input
may produce a server error, nor leave the job list unreadable."""

from __future__ import annotations

import json
import math
from contextlib import suppress
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from api.main import create_app
from core.settings import Settings
from tests.conftest import create_key

EXAMPLES = 25  # per operation and mode
HOSTILE_EXAMPLES = 15  # per operation

HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=5),
    st.sampled_from(["te\x00st", "\x7f", "ok\ud800", "x" * 200_000, "../../escaped"]),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324]),
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(max_value=-(2**63)),
)


@pytest.fixture
def fuzz_settings(backend: Settings) -> Settings:
    """The store of ``backend`` with rate limits out of the fuzzer's way."""
    return backend.model_copy(update={"rate_limit_per_minute": 1e9, "rate_limit_burst": 10**9})


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of the scalar values inside a JSON-like value."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))]
    return [path]


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def check_operations(backend: Settings, call, examples: int) -> list[str]:
    """Runs ``examples`` calls of every operation; the server errors they caused.
    ``call(operation, data, client)`` draws a request and answers its response."""
    app = create_app(backend)
    headers = {"Authorization": f"Bearer {create_key(backend, 'admin')}"}
    client = TestClient(app, headers=headers)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    def checker(operation):
        @given(data=st.data())
        @hypothesis_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(data) -> None:
            response = call(operation, data, client)
            if response.status_code >= 500:
                failures.append(f"{operation.method} {operation.path}: {response.text[:300]}")
            elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                assert "code" in response.json()["error"], response.text

        return check

    for operation in operations:
        with suppress(Unsatisfiable):  # an operation without parameters has no invalid input
            checker(operation)()
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_causes_a_server_error(fuzz_settings: Settings, mode: GenerationMode) -> None:
    def call(operation, data, client: TestClient):
        case = data.draw(operation.as_strategy(generation_mode=mode))
        return case.call(headers=client.headers)

    assert check_operations(fuzz_settings, call, EXAMPLES) == []


def test_no_hostile_value_causes_a_server_error(fuzz_settings: Settings) -> None:
    """Valid requests with one body, query or path value swapped for a hostile one."""
    sent: list[str] = []

    def call(operation, data, client: TestClient):
        case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        parts = {"query": case.query or {}, "path": case.path_parameters or {}}
        json_body = case.media_type == "application/json" and case.body is not None
        if json_body:
            parts["body"] = case.body
        places = [(part, path) for part, value in parts.items() for path in leaves(value) if path]
        if not places:
            return case.call(headers=client.headers)
        part, path = data.draw(st.sampled_from(places))
        new = data.draw(HOSTILE)
        sent.append(part)
        if part != "body":  # query and path values travel as UTF-8 text within a URL's size
            new = str(new).encode("utf-8", "backslashreplace").decode()[:4000]
        parts[part] = replaced(parts[part], path, new)
        url = operation.path.format(**{k: quote(str(v), safe="") for k, v in parts["path"].items()})
        return client.request(
            operation.method,
            url,
            params=parts["query"],
            # ensure_ascii writes lone surrogates as \ud800 escapes, as a hostile client would
            content=json.dumps(parts["body"], allow_nan=True) if json_body else None,
            headers={"Content-Type": "application/json"} if json_body else None,
        )

    assert check_operations(fuzz_settings, call, HOSTILE_EXAMPLES) == []
    assert {"body", "query", "path"} <= set(sent) and len(sent) > 100
    headers = {"Authorization": f"Bearer {create_key(fuzz_settings, 'admin')}"}
    with TestClient(create_app(fuzz_settings), headers=headers) as client:
        for path in ("/v1/jobs", "/v1/datasets", "/v1/models"):
            assert client.get(path).status_code == 200, path
