"""settings/masking.py: the key and a base_url password in every form they are printed in."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
import requests
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets

from source_pendo.activity.rows import AggregationRowReader, MalformedBody
from source_pendo.http.messages import BODY_QUOTE_CHARS, body_start, quoted
from source_pendo.settings.masking import secret_forms

KEY = 'k3y"with-quote\\and-backslash.us'


def test_every_form_of_a_key_with_quote_and_backslash_is_masked() -> None:
    update_secrets(secret_forms({"api_key": KEY}))
    for form in (KEY, json.dumps(KEY)[1:-1], json.dumps(json.dumps(KEY))[1:-1], quote(KEY, safe="")):
        masked = filter_secrets(f"before {form} after")
        assert "****" in masked and "with-quote" not in masked and "backslash" not in masked, form


def test_a_base_url_password_is_masked_plain_encoded_and_in_basic_auth() -> None:
    config = {"api_key": "key", "base_url": "http://pendo-user:s3cr3t%21pass@proxy.example:8080"}
    update_secrets(secret_forms(config))
    basic = base64.b64encode(b"pendo-user:s3cr3t!pass").decode()
    for form in ("s3cr3t%21pass", "s3cr3t!pass", basic):
        assert "s3cr3t" not in filter_secrets(f"url {form}") and basic not in filter_secrets(basic)


def test_longest_form_first_and_none_empty() -> None:
    forms = secret_forms({"api_key": KEY, "base_url": 42})
    assert forms == sorted(forms, key=len, reverse=True) and "" not in forms
    assert secret_forms({}) == []


# ------------------------------------------------------------------ a key straddling the cut of a quoted body

STRADDLED_KEY = "0123abcd-4567-efgh-8901-straddled-key.us"


def _key_parts(key: str, shortest: int = 6) -> list[str]:
    """Every run of `shortest` characters of the key: a prefix cut off at any length shows one of them."""
    return [key[i : i + shortest] for i in range(len(key) - shortest + 1)]


def _assert_no_part_of_the_key(text: str) -> None:
    leaked = [part for part in _key_parts(STRADDLED_KEY) if part in text]
    assert not leaked, f"part of the key is printed: {leaked[:3]} in {text!r}"


@pytest.mark.parametrize("offset", [70, 76, 230, 236])
def test_masking_a_malformed_body_quoted_with_the_key_across_its_cut_shows_no_part_of_it(offset: int) -> None:
    """A 200 HTML page echoing the key where the reader cuts the body it quotes (80 characters before, now
    QUOTED_START): masked first, the characters a cut key may leave dropped."""
    body = ("<html>" + "x" * (offset - 6) + STRADDLED_KEY + " maintenance</html>").encode()
    reader = AggregationRowReader()
    with pytest.raises(MalformedBody) as broke:
        reader.feed(body)
        reader.close()
    shown = quoted(str(broke.value), {"api_key": STRADDLED_KEY}, whole=not broke.value.cut)
    _assert_no_part_of_the_key(shown)
    assert shown.startswith("the body does not start with a JSON object: <html>xxx")


@pytest.mark.parametrize("offset", [BODY_QUOTE_CHARS * 4 - 10, BODY_QUOTE_CHARS - 10, 3])
def test_masking_body_start_with_the_key_across_its_cut_shows_no_part_of_it(offset: int) -> None:
    response = requests.Response()
    response._content = (
        "<p>" + " \n" * (offset // 2) + "y" * (offset % 2) + STRADDLED_KEY + "</p>" * 50
    ).encode()
    shown = body_start(response, {"api_key": STRADDLED_KEY})
    _assert_no_part_of_the_key(shown)


def test_masking_quoted_whole_text_masks_the_key_and_keeps_the_rest() -> None:
    assert quoted(f"denied {STRADDLED_KEY} here", {"api_key": STRADDLED_KEY}) == "denied **** here"
