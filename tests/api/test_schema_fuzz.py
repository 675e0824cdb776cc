"""Schemathesis against the OpenAPI schema: every operation, valid and invalid data, with a
real key; no input may produce a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from api.main import create_app
from core.settings import Settings
from tests.conftest import create_key

EXAMPLES = 25  # per operation and mode


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_causes_a_server_error(settings: Settings, mode: GenerationMode) -> None:
    fuzz = settings.model_copy(update={"rate_limit_per_minute": 1e9, "rate_limit_burst": 10**9})
    app = create_app(fuzz)
    headers = {"Authorization": f"Bearer {create_key(fuzz, 'admin')}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")
            elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                assert "code" in response.json()["error"], response.text

        try:
            check()
        except Unsatisfiable:  # an operation without parameters has no invalid input
            assert mode is GenerationMode.NEGATIVE
    assert failures == []
