"""Messages for Pendo's 400 and 403 answers, shared by `check` and the read's error handler.

What each status means is decided here once (BEHAVIOR.md §R-6, §R-13, §R-14):
- 400 on a GET of the configured host (check's probe) is how Pendo answers a valid key used against another
  region's host; a 400 elsewhere is a rejected request (a missing parameter, a plan without aggregation
  access): it is named with the start of Pendo's answer, and the region is mentioned only when the key's
  suffix disagrees with `region`.
- 403 whose body names a rate limit is throttling; 403 on `POST /aggregation` after GETs worked is a key
  without "Allow Write Access", which Pendo requires for aggregation queries; any other 403 a wrong key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import orjson
import requests

from ..settings.config import DEFAULTS, REGION_HOSTS, api_base
from ..settings.masking import secret_forms

KEYS_PAGE = "Settings > Integrations > Integration Keys"
BODY_QUOTE_CHARS = 200
_RATE_LIMIT = re.compile(rb"rate.?limit", re.IGNORECASE)

WRITE_ACCESS = (
    'Pendo requires "Allow Write Access" on the integration key for aggregation queries: edit the key under '
    f"{KEYS_PAGE} and enable it (the connector never writes; it only sends read-only aggregation queries)."
)


def key_suffix_region(config: Mapping[str, Any]) -> str | None:
    """The region a region-suffixed key (`….eu`) points to, when it is not the configured one."""
    suffix = str(config.get("api_key", "")).rsplit(".", 1)[-1].lower()
    if suffix in REGION_HOSTS and suffix != (config.get("region") or DEFAULTS["region"]):
        return suffix
    return None


def wrong_region(config: Mapping[str, Any]) -> str:
    """check's message for a 400 to its GET: the region, and the one a region-suffixed key points to."""
    message = (
        f"{api_base(config)} answered 400, which is how Pendo answers a valid key used against another "
        f"region's host; set `region` to the subscription's region ({', '.join(REGION_HOSTS)}) or fix `base_url`."
    )
    suffix = key_suffix_region(config)
    if suffix:
        message += f" The key ends with .{suffix}, which suggests region {suffix}."
    return message


def is_rate_limited(response: requests.Response) -> bool:
    """A 403 (or any answer) whose body names a rate limit, e.g. `{"error": "rateLimitExceeded"}` (§R-13)."""
    return bool(_RATE_LIMIT.search(response.content or b""))


def is_aggregation(response: requests.Response) -> bool:
    request = response.request
    return (
        request is not None
        and request.method == "POST"
        and (request.url or "").split("?")[0].endswith("/aggregation")
    )


def body_start(response: requests.Response, config: Mapping[str, Any]) -> str:
    """The first characters of the body, one line, the key masked (it never belongs in a message)."""
    content = response.content or b""
    read = BODY_QUOTE_CHARS * 4
    return quoted(content[:read].decode("utf-8", errors="replace"), config, whole=len(content) <= read)


def quoted(text: str, config: Mapping[str, Any], whole: bool = True) -> str:
    """`text` on one line, cut to BODY_QUOTE_CHARS, every printable form of the secrets masked (settings/masking.py).

    Masked before anything is cut: a key straddling the cut would otherwise leave its first characters in the
    message (a 200 HTML page echoing the key, quoted in a warning). `whole=False` says `text` is itself the start of
    a longer body, cut by the caller: a secret may begin in its last characters, so as many as the longest
    secret form holds, less one, are dropped after masking (a partial secret is never a form to replace).
    """
    forms = secret_forms(config)
    for form in forms:
        text = text.replace(form, "****")
    if not whole and forms:
        text = text[: max(0, len(text) - len(forms[0]) + 1)]
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text[:BODY_QUOTE_CHARS] + ("…" if len(text) > BODY_QUOTE_CHARS or not whole else "")


def request_name(response: requests.Response) -> str:
    """`POST /api/v1/aggregation (source accounts)` or `GET /api/v1/report/1/results.json`: no query, no key."""
    request = response.request
    if request is None:
        return "the request"
    path = urlparse(request.url or "").path
    name = f"{request.method} {path}"
    if is_aggregation(response) and isinstance(request.body, (bytes, str)):
        try:
            pipeline = orjson.loads(request.body)["request"]["pipeline"]
            name += f" (source {next(iter(pipeline[0]['source']))})"
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, StopIteration):
            pass
    return name


def rejected_request(response: requests.Response, config: Mapping[str, Any], stream: str) -> str:
    """A 400 that is not the region (§R-6): the stream, the request and the start of Pendo's answer."""
    message = (
        f"Pendo rejected a request of stream {stream} (HTTP {response.status_code} to "
        f'{request_name(response)}): "{body_start(response, config)}".'
    )
    if is_aggregation(response):
        message += (
            " If every aggregation answers this, the subscription's plan may lack access to Pendo's "
            "Aggregation API; otherwise please report it with the sync logs."
        )
    suffix = key_suffix_region(config)
    if suffix:
        message += f" The key ends with .{suffix} but `region` is {config.get('region') or DEFAULTS['region']}: set `region` to {suffix}."
    return message


def aggregation_forbidden(response: requests.Response, config: Mapping[str, Any], stream: str) -> str:
    """A 403 to an aggregation (not a rate limit): the key can read but not query (§R-14)."""
    return (
        f"Pendo refused an aggregation query of stream {stream} (HTTP {response.status_code} to "
        f"{request_name(response)}) although the key is accepted for reads: the key most likely lacks write "
        f"access. {WRITE_ACCESS}"
    )
