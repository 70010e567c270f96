"""include_anonymous_visitors turned on after syncs without it: the visitors stream is read whole again."""

from __future__ import annotations

from typing import Any

from airbyte_cdk.models import AirbyteMessage, AirbyteStateMessage, AirbyteStateMessageSerializer, Type

from source_pendo.entities.anonymous import backfill_anonymous_visitors, with_anonymous_setting


def _state(name: str, **stream_state: Any) -> AirbyteStateMessage:
    return AirbyteStateMessageSerializer.load(
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": stream_state}}
    )


def _names(state: list[AirbyteStateMessage] | None) -> list[str]:
    return [m.stream.stream_descriptor.name for m in state or [] if m.stream]


def test_turned_on_drops_the_visitors_cursor_saved_without_anonymous_visitors() -> None:
    state = [
        _state("visitors", lastupdated=5, include_anonymous_visitors=False),
        _state("accounts", lastupdated=5),
    ]
    assert _names(backfill_anonymous_visitors(state, True)) == ["accounts"]


def test_unchanged_off_or_a_state_that_never_recorded_the_setting_is_kept() -> None:
    off = [_state("visitors", lastupdated=5, include_anonymous_visitors=False)]
    assert _names(backfill_anonymous_visitors(off, False)) == ["visitors"]
    on = [_state("visitors", lastupdated=5, include_anonymous_visitors=True)]
    assert _names(backfill_anonymous_visitors(on, True)) == ["visitors"]
    unknown = [_state("visitors", lastupdated=5)]  # saved before the setting was recorded: nothing to compare
    assert _names(backfill_anonymous_visitors(unknown, True)) == ["visitors"]


def test_visitors_state_messages_record_the_setting_and_others_are_untouched() -> None:
    visitors = AirbyteMessage(type=Type.STATE, state=_state("visitors", lastupdated=5))
    accounts = AirbyteMessage(type=Type.STATE, state=_state("accounts", lastupdated=5))
    assert with_anonymous_setting(visitors, True).state.stream.stream_state.include_anonymous_visitors is True
    assert not hasattr(
        with_anonymous_setting(accounts, True).state.stream.stream_state, "include_anonymous_visitors"
    )
