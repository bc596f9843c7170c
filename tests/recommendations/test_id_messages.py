"""A posted id that is too long or empty is a 400 that speaks of characters.

Regression of an integration pass: a 201-character `user_id` was refused as "Value should have at
most 200 items after validation" and `""` as "at least 1 item": pydantic's wording for a list, read
by an integrator as a batch-size limit. `DELETE /v1/items/{id}` already said "at most 200 characters".
"""

from __future__ import annotations

import pytest


@pytest.fixture
def client(settings):
    from services.recommendations import create_app
    from shared.db import upgrade

    upgrade(settings.db_url)
    return create_app(settings).test_client()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("user_id", "u" * 201, "user_id: Value error, must be at most 200 characters, got 201"),
    ("item_id", "é" * 201, "item_id: Value error, must be at most 200 characters, got 201"),
    ("user_id", "", "user_id: Value error, must hold a visible character"),
])
def test_an_id_out_of_bounds_is_a_400_naming_characters(client, field: str, value: str, words: str) -> None:
    body = {"user_id": "u", "item_id": "i", field: value}
    for sent in (body, [body]):
        res = client.post("/v1/interactions", json=sent)
        assert res.status_code == 400, res.get_json()
        message = res.get_json()["error"]["message"]
        assert words in message and "item" not in message.split(":", 1)[1].replace("item_id", ""), message


def test_an_id_of_200_characters_after_stripping_is_stored(client) -> None:
    res = client.post("/v1/interactions", json={"user_id": " " + "u" * 200 + " ", "item_id": "i"})
    assert res.status_code == 201 and res.get_json()["stored"] == 1, res.get_json()
    schema = client.get("/openapi.json").get_json()
    assert '"maxLength": 200' in str(schema).replace("'", '"')
