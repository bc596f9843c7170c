"""The real base encoder once: kb build → kb ask through the CLI, and the widget in Chromium."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="session")
def real_index(tmp_path_factory) -> Path:
    """The sample FAQ embedded with the bundled MiniLM (built once per session)."""
    from services.chatbot.cli import kb

    out = tmp_path_factory.mktemp("real-kb") / "idx"
    sample = Path(__file__).resolve().parents[2] / "data" / "samples" / "faq.jsonl"
    result = CliRunner().invoke(kb, ["build", "--kb", str(sample), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_cli_ask_with_real_encoder_paraphrases(real_index, tmp_path) -> None:
    from services.chatbot.cli import kb

    (tmp_path / "q.jsonl").write_text(
        json.dumps({"text": "somebody stole my debit card"}) + "\n"
        + json.dumps({"text": "what does it cost to send money abroad"}) + "\n")
    result = CliRunner().invoke(kb, ["ask", "--index", str(real_index), "--input", str(tmp_path / "q.jsonl"),
                                     "--output", str(tmp_path / "a.jsonl"), "--k", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["results"][0]["id"] for r in rows] == ["lost-card", "transfer-fee"]
    assert rows[0]["results"][0]["score"] > rows[0]["results"][1]["score"]


def test_cli_errors_are_one_line(tmp_path) -> None:
    from services.chatbot.cli import kb

    (tmp_path / "bad.jsonl").write_text('{"id": "a", "question": "q"}\n')
    result = CliRunner().invoke(kb, ["build", "--kb", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o")])
    assert result.exit_code != 0 and "bad.jsonl:1" in str(result.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.browser
def test_widget_in_headless_chromium(chat_settings, bow, loaded_kb) -> None:
    """Type a question into the widget on the demo page and see the answer."""
    from playwright.sync_api import sync_playwright
    from waitress.server import create_server

    from services.chatbot import create_app

    server = create_server(create_app(chat_settings, encoder=bow), host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.keyboard.press("Tab")  # keyboard only: focus the toggle, open, type, Enter
            page.get_by_role("button", name="Chat with us").focus()
            page.keyboard.press("Enter")
            page.get_by_label("Your question").fill("How do I reset my card PIN? <b>x</b>")
            page.keyboard.press("Enter")
            log = page.locator("[role=log]")
            # the markup makes the bag-of-words bot unsure: it offers suggestions as buttons
            log.get_by_role("button", name="I forgot my PIN").focus()
            page.keyboard.press("Enter")
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                log.get_by_text("Reset your PIN in the app").wait_for(timeout=15_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "chatbot_widget.png"))
            assert log.locator("b").count() == 0  # user text rendered as text, not HTML
            browser.close()
    finally:
        server.close()
    assert (ARTIFACTS / "chatbot_widget.png").stat().st_size > 1000


def test_kb_load_and_bootstrap_into_finpulse_home(settings, capsys) -> None:
    from services.chatbot.bootstrap import SAMPLE, prepare
    from services.chatbot.cli import kb
    from services.chatbot.service import kb_dir

    result = CliRunner().invoke(kb, ["load", "--kb", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "22"
    meta = kb_dir(settings) / "meta.json"
    before = meta.stat().st_mtime_ns
    prepare(settings, None)  # already loaded: nothing to do
    assert meta.stat().st_mtime_ns == before
