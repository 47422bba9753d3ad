"""Schemathesis fuzzes every operation of the OpenAPI schema against the real server (real
Redis, admin API enabled): valid and invalid inputs, no 5xx, and every status, content type and
body as documented."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from service.main import create_app
from service.publish import publish_version

from .conftest import NAME
from .live import LiveServer

TOKEN = "fuzz-admin-token-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = 10  # per operation and mode


def test_fuzz_the_openapi_schema(make_settings, redis_url, prefix, store, versions,
                                 record_property):
    publish_version(store, versions[0], NAME)
    app_settings = make_settings(redis_url=redis_url, key_prefix=prefix, admin_token=TOKEN,
                                 max_body_bytes=64 * 1024)
    failures, calls = [], 0
    with LiveServer(create_app(app_settings)) as server:
        schema = openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.generate, Phase.shrink],
                          suppress_health_check=list(HealthCheck))
                def run(case) -> None:
                    nonlocal calls
                    calls += 1
                    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"},
                                           checks=CHECKS)

                try:
                    run()
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE  # nothing to make invalid
                except (FailureGroup, AssertionError) as error:  # collect, report all at the end
                    failures.append(f"{operation.method.upper()} {operation.path} ({mode.value})"
                                    f": {error}")
    record_property("fuzz_operations", len(operations))
    record_property("fuzz_calls", calls)
    assert len(operations) >= 12
    assert not failures, "\n\n".join(failures)
