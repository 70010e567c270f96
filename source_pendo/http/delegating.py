"""Base of the connector's error handlers that wrap another one and decide a few responses themselves."""

from __future__ import annotations

from dataclasses import dataclass

from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.backoff_strategy import BackoffStrategy


@dataclass
class DelegatingErrorHandler(ErrorHandler):
    """Retries, retry time and backoff are the wrapped handler's; subclasses override `interpret_response`."""

    error_handler: ErrorHandler

    @property
    def max_retries(self) -> int | None:
        return self.error_handler.max_retries

    @property
    def max_time(self) -> int | None:
        return self.error_handler.max_time

    @property
    def backoff_strategies(self) -> list[BackoffStrategy] | None:
        # HttpRequester hands these to its HttpClient when the handler has them (Retry-After, then backoff).
        return getattr(self.error_handler, "backoff_strategies", None)

    def interpret_response(self, response_or_exception):  # type: ignore[no-untyped-def]
        return self.error_handler.interpret_response(response_or_exception)
