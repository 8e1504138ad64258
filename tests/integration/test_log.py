"""No token or password reaches a service's log, whatever the code logs or raises."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from bulkocr_gateway.settings import GatewaySettings

SECRET = "s3cret-token-value-4711"

# A service's logging as it starts, then what leaked before: a traceback whose frame held the
# caller's token, fields named like secrets, and a library line quoting a request header.
SCENARIO = f"""
import logging, structlog
from bulkocr.log import configure_logging
from bulkocr.settings import LogSettings

configure_logging(LogSettings(format=FORMAT), service="gateway")
log = structlog.get_logger("bulkocr_gateway.auth")

def authenticate(header):
    token = header.removeprefix("Bearer ")
    raise ConnectionResetError("client dropped the upload")

try:
    authenticate("Bearer {SECRET}")
except ConnectionResetError:
    log.exception("request_failed", path="/api/bulk/jobs")
log.info("push_started", authorization="Bearer {SECRET}", password="{SECRET}", owner="alice")
log.info("settings", tokens={{"alice": "{SECRET}"}})
logging.getLogger("aiohttp.server").error("bad request, headers: Authorization: Bearer {SECRET}")
"""


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_secret_reaches_the_log(log_format: str):
    """The lines are all written (the failure, its cause, the owner) but the token never is."""
    script = f"FORMAT = {log_format!r}\n{SCENARIO}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    output = result.stdout + result.stderr
    for expected in ("request_failed", "client dropped the upload", "push_started", "alice", "bad request"):
        assert expected in output
    assert SECRET not in output


def test_a_malformed_token_setting_is_refused_without_echoing_the_tokens(monkeypatch: pytest.MonkeyPatch):
    """The start-up error says what is wrong with BULKOCR_API_TOKENS, not what it holds."""
    monkeypatch.setenv("BULKOCR_API_TOKENS", f"alice:{SECRET},bob:{SECRET}")
    with pytest.raises(ValidationError) as refused:
        GatewaySettings()
    assert "two owners share one API token" in str(refused.value)
    assert SECRET not in str(refused.value)
