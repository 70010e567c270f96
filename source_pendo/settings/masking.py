"""The secrets of a config in every form the connector or a server may print them, for the CDK's masking.

The CDK masks what `update_secrets` registered, by plain substring replacement: the raw `api_key` only.
But a key is also printed JSON-escaped (a key holding `"` or `\\` in a trace, a log's JSON, a server echoing
it in a JSON error body, escaped once or twice), URL-encoded (a query or a debug URL), and a `base_url` of
the form `https://user:pass@host` holds a password that is printed in check messages, error traces and
debug URLs (and, base64-encoded with the user, in the Basic `Authorization` header requests derives from it).
`secret_forms(config)` lists each of these forms, longest first so that a form containing another is
masked whole. Registered by run.py (before the config is validated) and by `PendoEntrypoint.set_up_secret_filter`
(the CDK's own registration replaces the list).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit


def _escaped(value: str) -> Iterable[str]:
    yield value
    for ascii_only in (True, False):
        once = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        yield once
        yield json.dumps(once, ensure_ascii=ascii_only)[1:-1]
    yield quote(value, safe="")
    yield quote(value)
    yield quote_plus(value)


def secret_forms(config: Mapping[str, Any]) -> list[str]:
    """Every printable form of `api_key` and of a `base_url` password, longest first, no empty string."""
    raw: list[str] = []
    key = config.get("api_key")
    if isinstance(key, str) and key:
        raw += [key, key.strip()]
    base_url = config.get("base_url")
    if isinstance(base_url, str):
        try:
            parts = urlsplit(base_url.strip())
            password, user = parts.password, parts.username
        except ValueError:
            password = user = None
        if password:
            raw += [password, unquote(password)]
            basic = f"{unquote(user or '')}:{unquote(password)}".encode()
            raw.append(base64.b64encode(basic).decode())
    forms = {form for value in raw if value for form in _escaped(value) if form}
    return sorted(forms, key=len, reverse=True)
