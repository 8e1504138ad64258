"""Webhook URLs, which users type: the form the gateway accepts, and how one is shown.

Pure (the stdlib's URL parser): the gateway checks a job's `callback_url` with it, the
notifier its global URL, and both show a URL only as `redacted` (without the user name,
password and query, where credentials and tokens travel).
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_CHARS = 2000
SCHEMES = ("http", "https")


def url_problem(url: str, name: str = "callback_url") -> str | None:
    """Why `url` cannot be a webhook's URL (in words, naming it `name`), or None."""
    if len(url) > MAX_URL_CHARS:
        return f"{name} is longer than {MAX_URL_CHARS} characters"
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        return f"{name} holds spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # reading it checks it
    except ValueError as error:
        return f"{name} is not a URL: {error}"
    if parts.scheme.lower() not in SCHEMES:
        return f"{name} must be an http or https URL, not {parts.scheme or 'one without a scheme'!r}"
    if not parts.hostname:
        return f"{name} names no host"
    if port == 0:
        return f"{name} names port 0"
    return None


def redacted(url: str) -> str:
    """`url` as logs and answers show it: scheme, host, port and path only."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<not a URL>"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address goes back in its brackets
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"
