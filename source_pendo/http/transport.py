"""What the connector allows on the wire, for every request it sends (manifest requesters, the activity
retriever, visitor history, `check` and `http/quick.py`'s quick calls all go through `requests.Session`).

Redirects: requests follows a 3xx with every header of the request but `Authorization`, so a redirect to
another host would carry `x-pendo-integration-key` there, and an https `base_url` redirected to plain http would
send it in clear. `install()` makes `Session.rebuild_auth` (called for each hop before the hop is sent)
refuse a hop to another origin (scheme, host or port): `RedirectRefused` is raised and nothing is sent.
A redirect within the origin is followed. The patch is on the class, not on one session, because the CDK's
HttpClient builds its own sessions (`LimiterSession`, `CachedLimiterSession`) and `http/quick.py` uses
`requests.get`; installed on import of source.py and http/quick.py, idempotent.

Connection errors: `connection_cause` names a refused connection, a host name that does not resolve and an
untrusted TLS certificate, the three a wrong `base_url`/`region` gives; the error handler
(http/pendo_errors.py) fails on them at once while the host has never answered in this process,
instead of six retries over minutes. A host that accepts connections and never answers (closes them, or
sends nothing) gets `FIRST_ANSWER_SECONDS` per request and `MAX_UNANSWERED` requests, retried seconds apart,
while it has never answered; then one error names `base_url` (`unanswered_cause`, `note_unanswered`).
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters

DEFAULT_PORTS = {"http": 80, "https": 443}
_ANSWERED: set[tuple[str, str, int | None]] = set()
_ANSWERED_LOCK = threading.Lock()
_UNANSWERED: dict[tuple[str, str, int | None], int] = {}
# While a host has never answered in this process: its first answer is awaited at most this long (a server that
# accepts connections and never answers held a sync ~6.4 min before its first error, issue 24), and a
# connection it closes or leaves unanswered is retried after a short backoff (retry_after.py), MAX_UNANSWERED
# times in all, then fails naming `base_url` (pendo_errors.py).
FIRST_ANSWER_SECONDS = float(os.environ.get("SOURCE_PENDO_FIRST_ANSWER_SECONDS") or 60)  # tests: seconds
MAX_UNANSWERED = 3


def origin(url: str | None) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port defaulted by scheme; user info dropped."""
    parts = urlsplit(url or "")
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def origin_text(url: str | None) -> str:
    """`scheme://host[:port]` of `url`: no user info, path or query (they may hold anything)."""
    scheme, host, port = origin(url)
    shown = f"{scheme}://{host}" if scheme else host or "(no URL)"
    return shown if port is None or port == DEFAULT_PORTS.get(scheme) else f"{shown}:{port}"


class RedirectRefused(requests.RequestException):
    """A redirect to another origin (or from https to http), not followed: the key would go with it."""


def redirect_refused_message(source: str | None, target: str | None, status: int | None) -> str:
    downgrade = origin(source)[0] == "https" and origin(target)[0] == "http"
    return (
        f"Pendo's API at {origin_text(source)} answered a redirect (HTTP {status}) to "
        f"{origin_text(target)}{', plain http' if downgrade else ''}, another origin. The connector never sends "
        "the integration key to another origin or over plain http, so it did not follow it. Set `base_url` "
        "(or leave it empty and set `region`) to the Pendo API host itself, not to an address that redirects."
    )


_original_rebuild_auth = requests.Session.rebuild_auth


def _rebuild_auth(self: requests.Session, prepared_request: requests.PreparedRequest, response: Any) -> None:
    source = response.request.url if getattr(response, "request", None) is not None else None
    if origin(prepared_request.url) != origin(source):
        raise RedirectRefused(
            redirect_refused_message(source, prepared_request.url, getattr(response, "status_code", None)),
            request=prepared_request,
            response=response,
        )
    _original_rebuild_auth(self, prepared_request, response)


_original_adapter_send = requests.adapters.HTTPAdapter.send


def _first_answer_timeout(timeout: Any, url: str | None) -> Any:
    """The read timeout capped at FIRST_ANSWER_SECONDS while the host has not answered in this process."""
    if has_answered(url):
        return timeout
    if isinstance(timeout, tuple) and len(timeout) == 2:
        connect, read = timeout
        if read is None or read > FIRST_ANSWER_SECONDS:
            return (connect, FIRST_ANSWER_SECONDS)
        return timeout
    if timeout is None or (isinstance(timeout, (int, float)) and timeout > FIRST_ANSWER_SECONDS):
        return (timeout, FIRST_ANSWER_SECONDS)
    return timeout


def _adapter_send(
    self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any
) -> Any:
    kwargs["timeout"] = _first_answer_timeout(kwargs.get("timeout"), request.url)
    return _original_adapter_send(self, request, *args, **kwargs)


def install() -> None:
    """Refuse cross-origin redirects in every `requests.Session` of the process, and wait at most
    FIRST_ANSWER_SECONDS for a host's first answer (idempotent)."""
    requests.Session.rebuild_auth = _rebuild_auth  # type: ignore[method-assign,assignment]
    requests.adapters.HTTPAdapter.send = _adapter_send  # type: ignore[method-assign]


def answered(url: str | None) -> None:
    """The host of `url` answered (any status): a later connection error to it is transient."""
    key = origin(url)
    if key not in _ANSWERED:
        with _ANSWERED_LOCK:
            _ANSWERED.add(key)


def has_answered(url: str | None) -> bool:
    return origin(url) in _ANSWERED


def unanswered_cause(error: BaseException) -> str | None:
    """A connection the host accepted but never answered on, in words: closed (or reset) before any status
    line, or no status line within the read timeout; else None."""
    if isinstance(error, requests.ReadTimeout):
        return "accepted the connection but sent no answer in time"
    if not isinstance(error, requests.ConnectionError) or isinstance(error, requests.Timeout):
        return None
    text = f"{error!r} {error}"
    if any(
        sign in text
        for sign in ("RemoteDisconnected", "Connection aborted", "Connection reset by peer", "BadStatusLine")
    ):
        return "accepted the connection and closed it without an answer"
    return None


def note_unanswered(url: str | None) -> int:
    """One more request to the host of `url` went unanswered; how many have so far (while it never answered)."""
    key = origin(url)
    with _ANSWERED_LOCK:
        _UNANSWERED[key] = _UNANSWERED.get(key, 0) + 1
        return _UNANSWERED[key]


def connection_cause(error: BaseException) -> str | None:
    """What a wrong host gives, in words: a refused connection, DNS, an untrusted TLS certificate; else None."""
    if not isinstance(error, requests.ConnectionError) or isinstance(error, requests.Timeout):
        return None
    text = f"{error!r} {error}"
    if isinstance(error, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
            return "its TLS certificate is not trusted"
        return "the TLS handshake failed"
    if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
        return "the host name does not resolve (DNS)"
    if "Connection refused" in text or "ConnectionRefusedError" in text or "Errno 111" in text:
        return "the connection was refused"
    return None
