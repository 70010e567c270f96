"""settings/masking.py: the key and a base_url password in every form they are printed in."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets, update_secrets

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
