"""Schemathesis hooks for .ci/schemathesis.sh: authenticates every generated request as the
fuzzing user, logging in again whenever a request answers 401 (a generated call to
`POST /auth/logout` or `DELETE /users/me/sessions/{id}` may end the current session)."""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["PALAVER_FUZZ_BASE"]
LOGIN = os.environ["PALAVER_FUZZ_LOGIN"]
PASSWORD = os.environ["PALAVER_FUZZ_PASSWORD"]


def _login() -> str:
    body = json.dumps({"login": LOGIN, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"{BASE}/api/v1/auth/login",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


# Cached for an hour; a 401 answer drops the cache, so the next request logs in again.
@schemathesis.auth(refresh_interval=3600)
class PalaverLogin:
    def get(self, case, ctx):
        return _login()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
