"""The spec against the rules of Airbyte's connector form (airbyte-platform, airbyte-webapp: the classic form of
`core/form/schemaToFormBlock.ts` and `schemaToYup.ts`, which renders a source's settings, and the newer SchemaForm).

* A property without `type`, `enum` or `oneOf` is not rendered by SchemaForm and is a free, unchecked text box
  in the classic form: every property has one, recursively (array items and oneOf options included).
* A `oneOf` is a dropdown of objects: the holder must be `type: object` (the classic form gives each option the
  holder's type, `oneOfWithNonObjects` otherwise), every option an object with a `title` (its label), and the
  options must share a first property holding a truthy `const` (`oneOfWithoutConst` otherwise).
* JSON typed by hand is a multi-line text area: `multiline: true`.
* Every property has a title and a description (the label and its tooltip).
scripts/webapp_form_check/ runs the webapp's own form code on the spec where a checkout of it is at hand
(docs/development.md, "The spec in Airbyte's form").
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from source_pendo.settings.config import validate_config
from source_pendo.settings.spec import spec_message

SPEC = spec_message()["spec"]["connectionSpecification"]
JSON_TEXT_FIELDS = (
    "custom_aggregations.items.source",
    "custom_aggregations.items.pipeline",
    "custom_aggregations.items.schema",
)


def _properties(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of `schema`, recursively: object properties, array items and oneOf options."""
    for name, prop in schema.get("properties", {}).items():
        where = f"{path}.{name}" if path else name
        yield where, prop
        yield from _properties(prop, where)
        if isinstance(prop.get("items"), dict):
            yield f"{where}.items", prop["items"]
            yield from _properties(prop["items"], f"{where}.items")
        for index, option in enumerate(prop.get("oneOf", [])):
            yield f"{where}.oneOf[{index}]", option
            yield from _properties(option, f"{where}.oneOf[{index}]")


ALL = dict(_properties(SPEC))


def test_the_walk_reaches_nested_items_and_oneof_options() -> None:
    assert "filters.items.value.oneOf[3].from" in ALL and "custom_aggregations.items.primary_key.items" in ALL


@pytest.mark.parametrize("where", sorted(ALL))
def test_every_property_has_a_type_enum_or_oneof_a_title_and_a_description(where: str) -> None:
    prop = ALL[where]
    assert any(key in prop for key in ("type", "enum", "oneOf")), f"{where}: no type, enum or oneOf"
    assert prop.get("title") and prop.get("description"), f"{where}: no title or description"


@pytest.mark.parametrize("where", sorted(w for w, p in ALL.items() if "oneOf" in p))
def test_every_oneof_is_a_dropdown_of_objects_told_apart_by_a_shared_const(where: str) -> None:
    holder = ALL[where]
    assert holder.get("type") == "object", f"{where}: the classic form needs the oneOf holder to be an object"
    options = holder["oneOf"]
    assert all(o.get("type") == "object" and o.get("title") for o in options), (
        f"{where}: untitled or not object"
    )
    shared = [k for k in options[0]["properties"] if all(k in o["properties"] for o in options)]
    assert shared, f"{where}: the options share no property"
    key = shared[0]  # the form's selection key: the first property every option has
    consts = [o["properties"][key].get("const") for o in options]
    assert all(consts) and len(set(consts)) == len(consts), f"{where}: {key} is not a distinct truthy const"
    assert all(key in o.get("required", []) for o in options), f"{where}: {key} not required in every option"


@pytest.mark.parametrize("where", JSON_TEXT_FIELDS)
def test_json_typed_by_hand_is_a_multiline_text_area(where: str) -> None:
    assert ALL[where].get("type") == "string" and ALL[where].get("multiline") is True


@pytest.mark.parametrize("where", sorted(w for w, p in ALL.items() if "pattern" in p))
def test_every_pattern_compiles_and_its_examples_match_it(where: str) -> None:
    pattern = re.compile(ALL[where]["pattern"])
    for example in ALL[where].get("examples", []):
        assert pattern.search(example), f"{where}: example {example!r} does not match its own pattern"


@pytest.mark.parametrize(
    ("base_url", "accepted"),
    [
        ("", True),
        ("https://pendo-proxy.example.com", True),
        ("https://user:pass@pendo-proxy.example.com:8443/prefix", True),
        ("http://127.0.0.1:8765", True),
        ("http://localhost:8080/pendo", True),
        ("http://[::1]:9000", True),
        ("http://pendo-proxy.example.com", False),
        ("http://127.0.0.1.example.com", False),
        ("http://10.0.0.1:8080", False),
    ],
)
def test_base_url_takes_https_everywhere_and_plain_http_only_for_this_machine(
    base_url: str, accepted: bool
) -> None:
    assert bool(re.search(SPEC["properties"]["base_url"]["pattern"], base_url)) is accepted


FORM_CONFIG: dict[str, Any] = {  # what the form submits: every kind of filter value, a custom aggregation
    "api_key": "00000000-0000-0000-0000-000000000000.us",
    "start_date": "2024-01-01",
    "filters": [
        {
            "stream": "page_events",
            "field": "server",
            "operator": "EQUAL_TO",
            "value": {"value_type": "text", "text": "app.example.com"},
        },
        {
            "stream": "events",
            "field": "numEvents",
            "operator": "GREATER_THAN",
            "value": {"value_type": "number", "number": 5},
        },
        {
            "stream": "events",
            "field": "periodStart",
            "operator": "GREATER_THAN_OR_EQUAL_TO",
            "value": {"value_type": "time", "time": "2024-01-02"},
        },
        {
            "stream": "guide_events",
            "field": "browserTime",
            "operator": "BETWEEN",
            "value": {"value_type": "time_range", "from": "2024-01-01", "to": "2024-01-31"},
        },
    ],
    "custom_aggregations": [
        {
            "name": "feature_clicks",
            "source": '{\n  "featureEvents": null\n}',
            "pipeline": '[\n  {"group": {"group": ["accountId", "periodStart"],\n    "fields": {"clicks": {"sum": "numEvents"}}}}\n]',
            "primary_key": ["accountId"],
        }
    ],
}


def _with_filter(value: dict[str, Any]) -> dict[str, Any]:
    condition = {"stream": "events", "field": "periodStart", "operator": "BETWEEN", "value": value}
    return {**FORM_CONFIG, "filters": [condition]}


# configs as the webapp's form submits them (scripts/webapp_form_check/ runs the form's own code on these), and
# configs it must refuse
FORM_CASES: list[dict[str, Any]] = [
    {
        "name": "every_filter_value_kind_and_a_multiline_custom_aggregation",
        "config": FORM_CONFIG,
        "valid": True,
    },
    {
        "name": "http_on_this_machine",
        "config": {**FORM_CONFIG, "base_url": "http://127.0.0.1:8765"},
        "valid": True,
    },
    {
        "name": "https_proxy",
        "config": {**FORM_CONFIG, "base_url": "https://pendo-proxy.example.com"},
        "valid": True,
    },
    {
        "name": "http_to_another_host",
        "config": {**FORM_CONFIG, "base_url": "http://pendo-proxy.example.com"},
        "valid": False,
    },
    {
        "name": "time_range_without_its_end",
        "config": _with_filter({"value_type": "time_range", "from": "2024-01-01"}),
        "valid": False,
    },
    {
        "name": "time_not_a_date",
        "config": _with_filter({"value_type": "time", "time": "yesterday"}),
        "valid": False,
    },
    {
        "name": "no_start_date",
        "config": {k: v for k, v in FORM_CONFIG.items() if k != "start_date"},
        "valid": False,
    },
]


@pytest.mark.parametrize("case", FORM_CASES, ids=lambda case: case["name"])
def test_the_forms_cases_are_what_the_spec_accepts(case: dict[str, Any]) -> None:
    errors = list(jsonschema.Draft7Validator(SPEC).iter_errors(case["config"]))
    assert not errors if case["valid"] else errors


def test_a_config_as_the_form_submits_it_is_valid_for_the_spec_and_the_connector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", "1779286800000")
    jsonschema.Draft7Validator(SPEC).validate(FORM_CONFIG)
    validate_config(FORM_CONFIG)


@pytest.mark.skipif(
    not os.environ.get("AIRBYTE_WEBAPP_SRC"),
    reason="needs a checkout of airbyte-platform's airbyte-webapp/src in AIRBYTE_WEBAPP_SRC, and node",
)
def test_the_webapps_own_form_code_renders_the_spec_and_submits_the_cases() -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "webapp_form_check" / "check.sh"
    run = subprocess.run([str(script)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
