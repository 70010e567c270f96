"""accounts and visitors: the keyset over the aggregation API and the lastupdated cursor they share.

Each test runs for both streams; what only one of them does is in test_accounts.py / test_visitors.py.
Every read without saved state first sends the size estimate's count request (mocked here, asserted in
test_estimates.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
    DAY_MS,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    mock_count,
    mock_keyset_pages,
    mock_metadata_schema,
    payload,
    read_stream,
    rows_like,
    state,
)

_PAGE = 1_000
_MAX_LASTUPDATED = 1709305390000  # saved as an integer (entities/cursor_state.py)


@dataclass(frozen=True)
class Entity:
    stream: str
    id_field: str
    source: dict[str, Any]  # the aggregation source of the default config
    ids: list[str]  # the ids the payload file's rows become records with, in order
    awkward_id: str  # a real-looking id holding a double quote and a backslash
    awkward_literal: str  # the same id as the keyset filter's string literal

    def request(self, after: str = "", since_ms: int = 0, limit: int = 50_000):
        return aggregation_request(
            self.stream,
            self.source,
            f'{self.id_field} > "{after}"'
            # without state (since 0) no lastupdated condition: it would drop rows lacking the field
            + (f" && metadata.auto.lastupdated >= {since_ms}" if since_ms else ""),
            self.id_field,
            limit,
        )

    def mock_pages(
        self, http_mocker: HttpMocker, *pages: list[dict[str, Any]], since_ms: int = 0, limit: int = 50_000
    ) -> list[Any]:
        """The pages of one read, and the probe after a short last page (builders.mock_keyset_pages)."""
        return mock_keyset_pages(
            http_mocker,
            lambda after: self.request(after, since_ms, limit),
            list(pages),
            self.id_field,
            limit,
        )

    def ids_of(self, output) -> list[str]:
        return [r.record.data[self.id_field] for r in output.records]


ACCOUNTS = Entity(
    "accounts",
    "accountId",
    {"accounts": {"appId": ALL_APPS}},
    ["Acme Corp", "Globex"],
    'Acme "West" \\ Co',
    'Acme \\"West\\" \\\\ Co',
)
VISITORS = Entity(
    "visitors",
    "visitorId",
    {"visitors": {"identified": True, "appId": ALL_APPS}},
    ["42", "43"],  # the anonymous row dropped
    'jane "j" \\ doe@example.com',
    'jane \\"j\\" \\\\ doe@example.com',
)
ENTITIES = pytest.mark.parametrize("entity", [ACCOUNTS, VISITORS], ids=lambda e: e.stream)


def _mock_read_prerequisites(http_mocker: HttpMocker, entity: Entity, estimated: bool = True) -> None:
    mock_metadata_schema(http_mocker, entity.stream)
    if estimated:
        mock_count(http_mocker, entity.stream, entity.source)


# ------------------------------------------------------------------------------------------ full refresh
@ENTITIES
def test_entity_first_page_body_is_the_keyset_query_of_the_configured_source(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    _mock_read_prerequisites(http_mocker, entity)
    entity.mock_pages(http_mocker, payload(entity.stream)["results"])

    output = read_stream(entity.stream, ConfigBuilder().build())

    assert entity.ids_of(output) == entity.ids


@ENTITIES
def test_entity_next_page_starts_after_the_last_id_escaping_quote_and_backslash(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    first_page = rows_like(
        entity.stream, entity.id_field, [f"id-{i:04d}" for i in range(_PAGE - 1)] + [entity.awkward_id]
    )
    _mock_read_prerequisites(http_mocker, entity)
    http_mocker.post(entity.request(limit=_PAGE), aggregation_response(first_page))
    http_mocker.post(
        aggregation_request(
            entity.stream,
            entity.source,
            f'{entity.id_field} > "{entity.awkward_literal}"',
            entity.id_field,
            _PAGE,
        ),
        aggregation_response(rows_like(entity.stream, entity.id_field, ["zeta"])),
    )  # one row after a page of 1,000: the last page (shorter than an earlier answer), no probe

    output = read_stream(entity.stream, ConfigBuilder().with_(page_size=_PAGE).build())

    assert len(output.records) == _PAGE + 1
    assert output.records[-1].record.data[entity.id_field] == "zeta"


@ENTITIES
def test_entity_numeric_looking_id_stays_a_string_key(http_mocker: HttpMocker, entity: Entity) -> None:
    first_page = rows_like(entity.stream, entity.id_field, [f"{i:04d}" for i in range(_PAGE - 1)] + ["1_000"])
    _mock_read_prerequisites(http_mocker, entity)
    http_mocker.post(entity.request(limit=_PAGE), aggregation_response(first_page))
    http_mocker.post(entity.request(after="1_000", limit=_PAGE), aggregation_response([]))

    output = read_stream(entity.stream, ConfigBuilder().with_(page_size=_PAGE).build())

    assert len(output.records) == _PAGE


@ENTITIES
def test_entity_short_first_page_is_followed_by_one_probe_then_the_read_stops(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    """A short first page may be a server cap (§B-17): the next key is asked once; no rows: the read is done."""
    _mock_read_prerequisites(http_mocker, entity)
    page = rows_like(entity.stream, entity.id_field, ["a", "b"])
    first, probe = entity.mock_pages(http_mocker, page, limit=_PAGE)

    output = read_stream(entity.stream, ConfigBuilder().with_(page_size=_PAGE).build())

    assert entity.ids_of(output) == ["a", "b"] and not output.errors
    assert probe.__dict__ == entity.request(after="b", limit=_PAGE).__dict__
    http_mocker.assert_number_of_calls(first, 1)


@ENTITIES
def test_entity_server_capping_answers_below_the_limit_is_paged_at_its_cap_with_one_warning(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    """Pendo (or a proxy) answers at most 2 rows to `limit` 1,000: the probe after the first short page brings
    rows, so pages of 2 are full from then on; every row is read and one WARNING names the cap."""
    _mock_read_prerequisites(http_mocker, entity)
    ids = ["a", "b", "c", "d", "e"]
    pages = [ids[0:2], ids[2:4], ids[4:5]]  # the probe after [a, b] is the request for [c, d]
    after = ""
    for page in pages:
        http_mocker.post(
            entity.request(after=after, limit=_PAGE),
            aggregation_response(rows_like(entity.stream, entity.id_field, page)),
        )
        after = page[-1] if page else after

    output = read_stream(entity.stream, ConfigBuilder().with_(page_size=_PAGE).build())

    assert entity.ids_of(output) == ids and not output.errors
    warnings = [m.log.message for m in output.logs if "caps answers at 2 rows" in m.log.message]
    assert len(warnings) == 1 and entity.stream in warnings[0]


# ------------------------------------------------------------------------------------------ incremental
def _saved(entity: Entity, state: dict[str, Any]) -> dict[str, Any]:
    """The state saved: visitors' also records include_anonymous_visitors (turned on, visitors is read whole)."""
    return {**state, "include_anonymous_visitors": False} if entity.stream == "visitors" else state


@ENTITIES
def test_entity_without_state_reads_everything_and_saves_the_max_lastupdated(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    _mock_read_prerequisites(http_mocker, entity)
    entity.mock_pages(http_mocker, payload(entity.stream)["results"])

    output = read_stream(entity.stream, ConfigBuilder().build(), SyncMode.incremental)

    assert entity.ids_of(output) == entity.ids
    assert output.most_recent_state.stream_state.__dict__ == _saved(entity, {"lastupdated": _MAX_LASTUPDATED})


@ENTITIES
@pytest.mark.parametrize("lookback_days", [1, 2])
def test_entity_with_state_reads_from_the_state_minus_the_lookback(
    http_mocker: HttpMocker, entity: Entity, lookback_days: int
) -> None:
    saved = 1709305390000
    _mock_read_prerequisites(http_mocker, entity, estimated=False)
    entity.mock_pages(
        http_mocker, payload(entity.stream)["results"][:1], since_ms=saved - lookback_days * DAY_MS
    )

    output = read_stream(
        entity.stream,
        ConfigBuilder().with_(lookback_window_days=lookback_days).build(),
        SyncMode.incremental,
        state(entity.stream, {"lastupdated": saved}),
    )

    assert len(output.records) == 1
    assert output.most_recent_state.stream_state.__dict__ == _saved(entity, {"lastupdated": saved})


@ENTITIES
def test_entity_with_state_and_the_default_lookback_reads_from_one_day_before_and_keeps_the_max(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    saved = 1709269300000  # saved as text, as versions before 1.0.0 did: read alike, saved back as an integer
    _mock_read_prerequisites(http_mocker, entity, estimated=False)
    entity.mock_pages(http_mocker, payload(entity.stream)["results"], since_ms=saved - DAY_MS)

    output = read_stream(
        entity.stream,
        ConfigBuilder().build(),
        SyncMode.incremental,
        state(entity.stream, {"lastupdated": str(saved)}),
    )

    assert output.most_recent_state.stream_state.__dict__ == _saved(entity, {"lastupdated": _MAX_LASTUPDATED})


@ENTITIES
def test_entity_with_zero_lookback_reads_from_the_state_itself(
    http_mocker: HttpMocker, entity: Entity
) -> None:
    saved = 1709269300000
    _mock_read_prerequisites(http_mocker, entity, estimated=False)
    entity.mock_pages(http_mocker, payload(entity.stream)["results"], since_ms=saved)

    output = read_stream(
        entity.stream,
        ConfigBuilder().with_(lookback_window_days=0).build(),
        SyncMode.incremental,
        state(entity.stream, {"lastupdated": saved}),
    )

    assert output.most_recent_state.stream_state.__dict__ == _saved(entity, {"lastupdated": _MAX_LASTUPDATED})


@ENTITIES
def test_entity_with_state_in_the_future_reads_nothing(http_mocker: HttpMocker, entity: Entity) -> None:
    _mock_read_prerequisites(http_mocker, entity, estimated=False)

    output = read_stream(
        entity.stream,
        ConfigBuilder().build(),
        SyncMode.incremental,
        state(entity.stream, {"lastupdated": 4102444800000}),  # 2100-01-01
    )

    assert output.records == []
    assert not output.errors
    assert output.most_recent_state.stream_state.__dict__["lastupdated"] == 4102444800000, "kept as saved"
