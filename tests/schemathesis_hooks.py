"""schemathesis hooks for the suite's run (tests/tests/schemathesis.rs).

A client makes each Idempotency-Key unique to one request; the fuzzer draws keys from a
small space ("0", "00", ...) and so sends one key with different requests, which the API
rightly refuses (422, "already used for a different request"). Every valid key the
fuzzer sends is therefore made unique; invalid ones are left alone, so the negative
checks of the header still run.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and isinstance(headers[name], str):
            if VALID_KEY.match(headers[name]):
                headers[name] = uuid.uuid4().hex
