"""http/transport.py: no redirect to another origin with the key; connection errors named by cause."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from source_pendo.check import check_connection
from source_pendo.http.pendo_errors import PendoErrors
from source_pendo.http.quick import API_KEY_HEADER, quick_get
from source_pendo.http.transport import (
    RedirectRefused,
    connection_cause,
    install,
    origin_text,
    redirect_refused_message,
)


class _Server:
    def __init__(self, location: str | None = None) -> None:
        self.keys: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.keys.append(self.headers.get(API_KEY_HEADER))
                if owner.location and not self.path.startswith("/final"):
                    self.send_response(302)
                    self.send_header("Location", owner.location)
                    self.end_headers()
                    return
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.location = location
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    other = _Server()
    redirecting = _Server(location=other.url + "/final")
    yield redirecting, other
    redirecting.close()
    other.close()


def test_a_redirect_to_another_origin_is_refused_and_the_key_never_sent_there(servers: Any) -> None:
    redirecting, other = servers
    install()
    config = {"api_key": "the-key", "base_url": redirecting.url}
    with pytest.raises(RedirectRefused) as raised:
        quick_get(config, "page")
    assert other.keys == []
    assert "`base_url`" in str(raised.value) and other.url in str(raised.value)
    assert "the-key" not in str(raised.value) and "/final" not in str(raised.value)
    with requests.Session() as session, pytest.raises(RedirectRefused):  # any session, e.g. the CDK's
        session.get(redirecting.url, headers={API_KEY_HEADER: "the-key"})
    assert other.keys == []


def test_a_same_origin_redirect_is_followed_with_the_key(servers: Any) -> None:
    redirecting, _ = servers
    redirecting.location = redirecting.url + "/final"
    install()
    response = quick_get({"api_key": "the-key", "base_url": redirecting.url}, "page")
    assert response.status_code == 200 and redirecting.keys == ["the-key", "the-key"]


def test_check_names_the_refused_redirect(servers: Any) -> None:
    redirecting, other = servers
    status = check_connection(
        {"api_key": "k", "base_url": redirecting.url, "start_date": "2024-01-01"}, _logger()
    )
    assert status.status.name == "FAILED" and "redirect" in (status.message or "")
    assert other.keys == []


def test_an_https_to_http_redirect_is_named_plain_http() -> None:
    message = redirect_refused_message("https://app.pendo.io/api/v1/page", "http://app.pendo.io/x?k=1", 301)
    assert "plain http" in message and "http://app.pendo.io" in message and "k=1" not in message
    assert origin_text("https://user:pw@h.example:443/p") == "https://h.example"


def test_the_error_handler_fails_at_once_on_a_refused_connection_naming_the_settings() -> None:
    handler = PendoErrors(config={"base_url": "http://127.0.0.1:1"}, error_handler=None, parameters={})  # type: ignore[arg-type]
    try:
        requests.get("http://127.0.0.1:1/api/v1/page", timeout=5)
    except requests.ConnectionError as error:
        assert connection_cause(error) == "the connection was refused"
        resolution = handler.interpret_response(error)
    assert resolution.response_action.name == "FAIL" and resolution.failure_type is not None
    assert "`base_url`" in (resolution.error_message or "") and "refused" in (resolution.error_message or "")


def _logger() -> Any:
    import logging

    return logging.getLogger("test")


def test_transport_first_answer_waits_60_s_at_most_until_the_host_answered():
    from source_pendo.http.transport import FIRST_ANSWER_SECONDS, _first_answer_timeout, answered

    url = "https://never-answered.example:8443/api/v1/page"
    assert FIRST_ANSWER_SECONDS == 60
    assert _first_answer_timeout((30, 300), url) == (30, 60)
    assert _first_answer_timeout((10, 20), url) == (10, 20)
    answered(url)
    assert _first_answer_timeout((30, 300), url) == (30, 300)


def test_transport_unanswered_cause_names_a_closed_or_silent_connection_only():
    import http.client

    from source_pendo.http.transport import unanswered_cause

    closed = requests.ConnectionError(
        requests.packages.urllib3.exceptions.ProtocolError(
            "Connection aborted.",
            http.client.RemoteDisconnected("Remote end closed connection without response"),
        )
    )
    assert unanswered_cause(closed) == "accepted the connection and closed it without an answer"
    assert unanswered_cause(requests.ReadTimeout("read timed out")) == (
        "accepted the connection but sent no answer in time"
    )
    assert unanswered_cause(requests.ConnectionError("[Errno 111] Connection refused")) is None
    assert unanswered_cause(requests.ConnectTimeout("connect timed out")) is None
