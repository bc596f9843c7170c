"""Query-argument numbers are ASCII digits on every service (shared.web.int_arg, number_arg)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import jsonify


@pytest.fixture
def client(settings):
    from shared.web import create_service_app, int_query, number_arg, query_params

    app = create_service_app("testsvc", settings)
    limit = int_query("rows", 1, 1000, 100)

    @app.get("/v1/rows")
    @query_params(limit=limit)
    def rows() -> Any:
        """Rows."""
        return jsonify({"limit": limit.read("limit")})

    @app.get("/v1/window")
    def window() -> Any:
        """A look-back window."""
        return jsonify({"hours": number_arg("hours", 24)})

    return app.test_client()


@pytest.mark.parametrize("raw, value", [("5", 5), ("05", 5), ("1000", 1000)])
def test_an_ascii_integer_is_read(client, raw, value) -> None:
    assert client.get("/v1/rows", query_string={"limit": raw}).json == {"limit": value}
    assert client.get("/v1/rows").json == {"limit": 100}


# int() took each of these: a sign, spaces, an underscore, full-width, Arabic-Indic and Devanagari digits
@pytest.mark.parametrize("raw", ["+5", " 5", "5 ", "1_0", "\uff11", "\u0663", "\u0967", "5.0", "", "0x10", "1e2"])
def test_an_integer_in_another_spelling_is_a_400(client, raw) -> None:
    r = client.get("/v1/rows", query_string={"limit": raw})
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == "bad_request" and "ASCII digits" in r.json["error"]["message"]


@pytest.mark.parametrize("raw", ["0", "-1", "1001", "9" * 50])
def test_an_integer_out_of_range_is_a_400(client, raw) -> None:
    r = client.get("/v1/rows", query_string={"limit": raw})
    assert r.status_code == 400 and "between 1 and 1000" in r.json["error"]["message"]


@pytest.mark.parametrize("raw, value", [("24", 24.0), ("0.5", 0.5), (".5", 0.5)])
def test_an_ascii_number_is_read(client, raw, value) -> None:
    assert client.get("/v1/window", query_string={"hours": raw}).json == {"hours": value}


@pytest.mark.parametrize("raw", ["\uff12\uff14", " 24", "+24", "1_0", "1e3", "nan", "inf", "abc", ""])
def test_a_number_in_another_spelling_is_a_400(client, raw) -> None:
    r = client.get("/v1/window", query_string={"hours": raw})
    assert r.status_code == 400 and "ASCII digits" in r.json["error"]["message"]
