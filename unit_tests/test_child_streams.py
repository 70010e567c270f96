"""The child streams (source_pendo/children/, BEHAVIOR.md §B-23): guide_steps, polls and poll_choices from
GET /guide?expand=*, page_rules from GET /page?expand=*, feature_rules from GET /feature?expand=*; one record per
child with its parent's id, app and lastUpdatedAt (the cursor), keyed as the manifest says, with deletions.

The payloads (guides_with_children.json, pages_with_rules.json, features_with_rules.json) hold the shapes Pendo
may list: a guide without `polls`, steps without `pollIds`, `steps: null`, a poll without an id, choices in
`idResponses` (a text or an object value), `numericResponses` and `attributes.choices` (R-18) at once, rules
without `designerHint`, a rule listed twice, a rule without text, a feature without `elementPathRules`."""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import NOW_ENV, NOW_MS, ConfigBuilder, get_request, json_response, payload, read_stream, state

from source_pendo.children.flatten import choices

DELETED_AT = "2024-03-03T00:00:00Z"  # NOW_MS
APP_1, APP_2, APP_3 = -323232, 5629499534213120, 6253630842798080
G1, G2, G3, G4 = (g["id"] for g in payload("guides_with_children"))
STEP_1A, STEP_1B = "QdvpXs-7GKyce65kStfmXsXY1G8", "bWq0HxoMd1lJ6x2vPq3m7Zr9Ud8"
STEP_2, STEP_3 = "Ua8nZ1cJx0-2kQ4vW9yTqPoL3sE", "Kp2mW8xQ0vR4tY6uI9oP1aS3dF5"
PAGE_1 = "aRnno0-bo2WMPJ7HBIFzCuDtKfg"
FEATURE_1 = "uXfQdbqvfgduiCvUF1gjVBA4vng"
LISTING = {  # stream -> (endpoint, payload)
    "guide_steps": ("guide", "guides_with_children"),
    "polls": ("guide", "guides_with_children"),
    "poll_choices": ("guide", "guides_with_children"),
    "page_rules": ("page", "pages_with_rules"),
    "feature_rules": ("feature", "features_with_rules"),
}
CURSOR = {
    "guide_steps": "guideLastUpdatedAt",
    "polls": "guideLastUpdatedAt",
    "poll_choices": "guideLastUpdatedAt",
    "page_rules": "pageLastUpdatedAt",
    "feature_rules": "featureLastUpdatedAt",
}


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _mock(http_mocker: HttpMocker, stream: str, body: Any = None) -> None:
    endpoint, name = LISTING[stream]
    http_mocker.get(get_request(endpoint, expand="*"), json_response(payload(name) if body is None else body))


def _read(stream: str, saved: dict | None = None, expecting_exception: bool = False, **config: Any):
    mode = SyncMode.incremental if saved is not None else SyncMode.full_refresh
    return read_stream(
        stream,
        ConfigBuilder().with_(**config).build(),
        mode,
        state(stream, saved) if saved else None,
        expecting_exception,
    )


def _records(output) -> list[dict[str, Any]]:
    return [r.record.data for r in output.records]


def _guide(gid: str) -> dict[str, Any]:
    return next(g for g in payload("guides_with_children") if g["id"] == gid)


def _emitted(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the CDK emits it: a top-level null is left out (nested nulls stay)."""
    return {k: v for k, v in record.items() if v is not None}


def _steps() -> list[dict[str, Any]]:
    g1, g2, g3 = _guide(G1), _guide(G2), _guide(G3)
    return [
        dict(g1["steps"][0], appId=APP_1, guideLastUpdatedAt=1709305390000),
        dict(g1["steps"][1], appId=APP_1, guideLastUpdatedAt=1709305390000),
        dict(g2["steps"][0], appId=APP_2, guideLastUpdatedAt=1700000000000),
        # the step without an id and the second copy of STEP_3 are left out
        dict(g3["steps"][0], appId=APP_3, guideLastUpdatedAt=1709269300000),
    ]


RATING = [{"choiceId": str(n), "label": None, "value": n} for n in range(11)]
PICKS = [
    {"choiceId": "a1", "label": "Dashboards", "value": None},
    {"choiceId": "b2", "label": "Reports & exports", "value": None},
]
# numericResponses first (2.0 written "2"), then attributes.choices without a second "2"
SCALE = [
    {"choiceId": "2", "label": None, "value": 2.0},
    {"choiceId": "y", "label": "Yes", "value": None},
    {"choiceId": "3", "label": None, "value": 3},
    {"choiceId": "Maybe", "label": "Maybe", "value": None},
]


def _polls() -> list[dict[str, Any]]:
    g1, g2 = _guide(G1), _guide(G2)
    rating, text = g1["polls"]
    pick, scale, _without_id = g2["polls"]
    one = {"guideId": G1, "appId": APP_1, "guideLastUpdatedAt": 1709305390000}
    two = {"guideId": G2, "appId": APP_2, "guideLastUpdatedAt": 1700000000000}
    return [
        dict(rating, **one, guideStepId=STEP_1A, type="NPSRating", choices=RATING),
        dict(text, **one, guideStepId=STEP_1A, type="FreeForm", choices=[]),
        dict(pick, **two, guideStepId=STEP_2, type="PickList", choices=PICKS),
        _emitted(dict(scale, **two, guideStepId=None, type="NumberScale", choices=SCALE)),
    ]


def _poll_choices() -> list[dict[str, Any]]:
    one = {"guideId": G1, "appId": APP_1, "guideLastUpdatedAt": 1709305390000}
    two = {"guideId": G2, "appId": APP_2, "guideLastUpdatedAt": 1700000000000}
    out = []
    for guide, poll, listed in (
        (one, "9ctsdjy0ba4", RATING),
        (two, "pick0000001", PICKS),
        (two, "scale000001", SCALE),
    ):
        out += [_emitted(dict(c, pollId=poll, position=n, **guide)) for n, c in enumerate(listed)]
    return out


def _page_rules() -> list[dict[str, Any]]:
    first, second = payload("pages_with_rules")[0]["rules"][:2]
    page = {"pageId": PAGE_1, "appId": APP_1, "pageLastUpdatedAt": 1709305390000}
    # the second copy of the first rule's text and the rule without text are left out
    return [dict(first, ruleIndex=0, **page), dict(second, ruleIndex=1, **page)]


def _feature_rules() -> list[dict[str, Any]]:
    feature = {"featureId": FEATURE_1, "appId": APP_1, "featureLastUpdatedAt": 1709305390000}
    return [
        dict(feature, elementPathRule="button#export", ruleIndex=0),
        dict(feature, elementPathRule="#toolbar .export", ruleIndex=1),
    ]


EXPECTED = {
    "guide_steps": _steps,
    "polls": _polls,
    "poll_choices": _poll_choices,
    "page_rules": _page_rules,
    "feature_rules": _feature_rules,
}
KEYS = {  # the primary keys the manifest declares, as saved in listed_ids
    "guide_steps": lambda r: f'["{r["guideId"]}","{r["id"]}"]',
    "polls": lambda r: f'["{r["guideId"]}","{r["id"]}"]',
    "poll_choices": lambda r: f'["{r["guideId"]}","{r["pollId"]}","{r["choiceId"]}"]',
    "page_rules": lambda r: f'["{r["pageId"]}","{r["rule"]}"]',
    "feature_rules": lambda r: f'["{r["featureId"]}","{r["elementPathRule"]}"]',
}


def _keys(stream: str, records: list[dict[str, Any]] | None = None) -> list[str]:
    return sorted(KEYS[stream](r) for r in (EXPECTED[stream]() if records is None else records))


# ------------------------------------------------------------------------------------------ full refresh
@pytest.mark.parametrize("stream", list(EXPECTED))
def test_child_stream_is_one_record_per_child_with_its_parents_id_app_and_lastupdatedat(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock(http_mocker, stream)

    output = _read(stream)

    assert _records(output) == EXPECTED[stream]()


@pytest.mark.parametrize("stream", list(EXPECTED))
@pytest.mark.parametrize(
    ("app_ids", "parents"),
    [
        (["5629499534213120"], {G2, "-AsTA2Rjbf2Z4MeGdfhWLaRVri4", "cQ2mZsEo6sd6CtFoM0oLYdCUoXY"}),
        # the third guide's and page's appId is another app; their appIds hold -323232
        (["-323232"], {G1, G3, PAGE_1, "Zk3xq2c6tN0RzY7uWmS1aB4dEfG", FEATURE_1}),
    ],
    ids=["one-app", "default-app-also-in-appIds"],
)
def test_child_stream_holds_only_children_of_objects_of_the_configured_apps(
    http_mocker: HttpMocker, stream: str, app_ids: list[str], parents: set[str]
) -> None:
    _mock(http_mocker, stream)

    output = _read(stream, app_ids=app_ids)

    parent = {"page_rules": "pageId", "feature_rules": "featureId"}.get(stream, "guideId")
    assert _records(output) == [r for r in EXPECTED[stream]() if r[parent] in parents]


@pytest.mark.parametrize("stream", list(EXPECTED))
def test_parents_without_children_or_with_lists_of_another_shape_give_no_records_never_an_error(
    http_mocker: HttpMocker, stream: str
) -> None:
    bare = {"id": "Bare0000000000000000000000", "appId": APP_1, "lastUpdatedAt": 1709305390000}
    odd = dict(bare, id="Odd00000000000000000000000", steps={"id": "x"}, polls=[None, 7], rules="//*/x")
    odd["elementPathRules"] = {"0": "#x"}
    _mock(http_mocker, stream, [bare, odd, {"name": "an object without an id", "steps": [{"id": "s"}]}])

    assert _records(_read(stream)) == []


def test_poll_choices_come_from_id_responses_numeric_responses_or_attributes_choices() -> None:
    """R-18: wherever Pendo lists them, the same choices; a number as JSON writes it, an object's label or text."""
    picks = {"a": "A", "b": {"text": "B"}}
    assert choices({"idResponses": picks}) == choices(
        {"attributes": {"choices": [{"id": "a", "label": "A"}, {"value": "b", "text": "B"}]}}
    )
    assert choices({"idResponses": picks}) == [
        {"choiceId": "a", "label": "A", "value": None},
        {"choiceId": "b", "label": "B", "value": None},
    ]
    scale = [{"choiceId": "1", "label": None, "value": 1}, {"choiceId": "2.5", "label": None, "value": 2.5}]
    assert choices({"numericResponses": [1, 2.5]}) == scale == choices({"attributes": {"choices": [1, 2.5]}})
    assert choices({"numericResponses": [7.0, True, "8"]}) == [{"choiceId": "7", "label": None, "value": 7.0}]
    assert choices({}) == choices({"attributes": None, "idResponses": [], "numericResponses": {}}) == []


# ------------------------------------------------------------------------------------------ incremental
@pytest.mark.parametrize("stream", list(EXPECTED))
def test_child_stream_without_state_saves_the_newest_parent_lastupdatedat_and_every_listed_key(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock(http_mocker, stream)

    output = read_stream(stream, ConfigBuilder().build(), SyncMode.incremental)

    assert _records(output) == EXPECTED[stream]()
    newest = max(r[CURSOR[stream]] for r in EXPECTED[stream]())
    assert output.most_recent_state.stream_state.__dict__ == {
        CURSOR[stream]: newest,
        "listed_ids": _keys(stream),
    }


@pytest.mark.parametrize("stream", ["guide_steps", "polls", "poll_choices"])
def test_child_stream_with_state_emits_the_children_of_parents_changed_since(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock(http_mocker, stream)
    saved = {"guideLastUpdatedAt": 1709269300000, "listed_ids": _keys(stream)}

    output = _read(stream, saved)

    # the second guide (lastUpdatedAt 1700000000000) is unchanged; the third's equals the cursor
    assert _records(output) == [r for r in EXPECTED[stream]() if r["guideId"] != G2]
    assert output.most_recent_state.stream_state.__dict__ == {
        "guideLastUpdatedAt": 1709305390000,
        "listed_ids": _keys(stream),
    }


GONE = {  # a child of an unchanged parent that the last sync listed
    "guide_steps": {"guideId": G2, "id": "GoneStep00000000000000000000"},
    "polls": {"guideId": G2, "id": "gonepoll001"},
    "poll_choices": {"guideId": G2, "pollId": "pick0000001", "choiceId": "c3"},
    "page_rules": {"pageId": "-AsTA2Rjbf2Z4MeGdfhWLaRVri4", "rule": "//*/settings"},
    "feature_rules": {"featureId": "cQ2mZsEo6sd6CtFoM0oLYdCUoXY", "elementPathRule": "button.save"},
}


@pytest.mark.parametrize("stream", list(EXPECTED))
def test_a_child_gone_while_its_parent_is_still_listed_is_one_deletion_record(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock(http_mocker, stream)
    newest = max(r[CURSOR[stream]] for r in EXPECTED[stream]())

    output = _read(
        stream, {CURSOR[stream]: newest, "listed_ids": sorted([*_keys(stream), KEYS[stream](GONE[stream])])}
    )

    deleted = [r for r in _records(output) if "_ab_cdc_deleted_at" in r]
    assert deleted == [{**GONE[stream], CURSOR[stream]: NOW_MS, "_ab_cdc_deleted_at": DELETED_AT}]
    assert output.most_recent_state.stream_state.__dict__ == {
        CURSOR[stream]: newest,
        "listed_ids": _keys(stream),
    }


@pytest.mark.parametrize("stream", ["guide_steps", "polls", "poll_choices"])
def test_a_child_added_to_a_parent_whose_lastupdatedat_did_not_move_is_emitted_once(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock(http_mocker, stream)
    expected = EXPECTED[stream]()
    oldest = min(expected, key=lambda r: r[CURSOR[stream]])
    newest = max(r[CURSOR[stream]] for r in expected)
    listed = [k for k in _keys(stream) if k != KEYS[stream](oldest)]

    output = _read(stream, {CURSOR[stream]: newest, "listed_ids": listed})

    assert _records(output) == [r for r in expected if r[CURSOR[stream]] == newest] + [oldest]


def test_the_last_polls_removed_from_listed_guides_are_deletions_not_an_untrusted_empty_listing(
    http_mocker: HttpMocker,
) -> None:
    without_polls = [dict(g, polls=[]) for g in payload("guides_with_children")]
    _mock(http_mocker, "polls", without_polls)
    saved = _keys("polls")

    output = _read("polls", {"guideLastUpdatedAt": 1709305390000, "listed_ids": saved})

    deleted = sorted(KEYS["polls"](r) for r in _records(output) if "_ab_cdc_deleted_at" in r)
    assert deleted == saved and len(_records(output)) == len(saved)
    assert output.most_recent_state.stream_state.__dict__["listed_ids"] == []


def test_an_empty_guide_listing_is_not_taken_for_the_deletion_of_every_step(http_mocker: HttpMocker) -> None:
    _mock(http_mocker, "guide_steps", [])

    output = _read("guide_steps", {"guideLastUpdatedAt": 1709305390000, "listed_ids": _keys("guide_steps")})

    assert _records(output) == []
    assert output.most_recent_state.stream_state.__dict__["listed_ids"] == _keys("guide_steps")
    assert any("listed no objects" in m.log.message for m in output.logs)


@pytest.mark.parametrize("listed", [["not json"], ['["only one"]'], ['["a", 1]'], "abc"])
def test_saved_child_keys_that_are_not_json_lists_of_the_key_fields_are_a_config_error_state_kept(
    http_mocker: HttpMocker, listed: Any
) -> None:
    _mock(http_mocker, "polls")

    output = _read("polls", {"guideLastUpdatedAt": 1, "listed_ids": listed}, expecting_exception=True)

    errors = [e.trace.error for e in output.errors]
    assert errors and errors[0].failure_type.value == "config_error"
    assert "listed_ids" in errors[0].message and "guideId, id" in errors[0].message
    assert output.records == [] and output.state_messages == [], "the saved state is never overwritten"
