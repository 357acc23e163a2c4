"""Schemathesis hooks for tests/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

`callback_positive_data_acceptance` completes the built-in
`positive_data_acceptance` check on `POST /api/v1/callbacks`, where the
built-in one lets 422 pass (schemathesis.toml says why): a schema-valid
request must be accepted, except for a refusal of its preferred window with
422 and code `invalid_window` or `no_dialing_time`.
"""

import json

import schemathesis

OPERATION = ("POST", "/api/v1/callbacks")
# The statuses the built-in check accepts for schema-valid data.
ACCEPTED = {401, 403, 404, 409, 429}
WINDOW_CODES = {"invalid_window", "no_dialing_time"}


@schemathesis.check
def callback_positive_data_acceptance(ctx, response, case):
    if (case.operation.method.upper(), case.operation.path) != OPERATION:
        return None
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if 200 <= status < 400 or status in ACCEPTED or status >= 500:
        return None
    if status == 422:
        try:
            code = json.loads(response.content).get("code")
        except (ValueError, AttributeError):
            code = None
        if code in WINDOW_CODES:
            return None
    raise AssertionError(
        f"Valid data should have been accepted: {status} {response.content[:500]!r}"
    )
