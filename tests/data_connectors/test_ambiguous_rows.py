"""Input rows that were read silently wrong (QA, input files): a blank text scored by ``predict``, a
CSV/TSV header naming a column twice outside training, a JSONL object naming a key twice. Each is now
one stderr line naming file and line (exit 2); a column or key no command reads may still repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_connectors.base import BadRow
from shared.errors import BadInput

HEADER_TWICE = ("the header names the column {!r} twice ({}); rename or drop one: "
                "which of them holds the data is ambiguous")
KEY_TWICE = "the object names the key {!r} twice ({}); drop one: which of them holds the data is ambiguous"
KB = "".join(json.dumps({"id": f"e{i}", "question": f"how do I do thing {i}", "answer": f"like {i}"}) + "\n"
             for i in range(4))


def finpulse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run the console entry point as a user does; its exit code and stderr lines."""
    from shared.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def fails_with(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = finpulse(argv, capsys)
    assert (code, lines) == (2, [f"finpulse: error: {message}"])  # one line: no traceback, no usage block


@pytest.mark.parametrize(("name", "body", "line"), [
    ("in.jsonl", '{"text": "profit rose"}\n{"text": ""}\n', 2),
    ("in.jsonl", '{"text": "profit rose"}\n\n{"text": " \\t\\n"}\n', 3),
    ("in.csv", "id,text\n1,profit rose\n2,   \n", 3),
    ("in.tsv", "text\tid\nprofit rose\t1\n\t2\n", 3),
])
def test_predict_refuses_a_blank_text_naming_file_and_line(settings, tmp_path: Path, name: str, body: str,
                                                           line: int, capsys: pytest.CaptureFixture[str]) -> None:
    """A blank text was scored (a label of no text, in among the real rows' labels); training refuses
    it as a bad row. predict has no --skip-bad: its output is the input's rows in order."""
    src, out = tmp_path / name, tmp_path / "out.jsonl"
    src.write_text(body)
    fails_with(["predict", "sentiment", "--model", "news/none", "--input", str(src), "--output", str(out)],
               f"{src}:{line}: empty text in field 'text'", capsys)
    assert not out.exists()


@pytest.mark.parametrize(("name", "body", "line", "message"), [
    ("in.csv", "id,text,text\n1,profit rose,profit fell\n", 1, HEADER_TWICE.format("text", "columns 2 and 3")),
    ("in.tsv", "\ntext\tsource\tsource\nprofit rose\ta\tb\n", 2, HEADER_TWICE.format("source", "columns 2 and 3")),
    ("in.jsonl", '{"text": "ok"}\n{"text": "profit rose", "text": "profit fell"}\n', 2,
     KEY_TWICE.format("text", "keys 1 and 2")),
    ("in.jsonl", '{"id": 1, "text": "profit rose", "id": 2}\n', 1, KEY_TWICE.format("id", "keys 1 and 3")),
])
def test_predict_refuses_a_column_or_key_named_twice(settings, tmp_path: Path, name: str, body: str, line: int,
                                                     message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """predict scored the last `text` and echoed the last of any other repeated column, silently: every
    column of its input is read, since the output rows carry them all."""
    src = tmp_path / name
    src.write_text(body)
    fails_with(["predict", "sentiment", "--model", "news/none", "--input", str(src), "--output",
                str(tmp_path / "out.jsonl")], f"{src}:{line}: {message}", capsys)


def test_predict_scores_the_same_files_once_fixed(settings, tiny_sentiment_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """What is refused is the blank text or the repeated name alone: blank names of trailing
    separators, and a key repeated inside a nested value, are no column read twice."""
    csv_in, jsonl_in = tmp_path / "in.csv", tmp_path / "in.jsonl"
    csv_in.write_text("id,text,,\n1,record profit and strong growth,,\n2,,,\n")
    jsonl_in.write_text('{"text": "record profit", "meta": {"k": 1, "k": 2}}\n{"text": "profit fell", "text": ""}\n')
    ref = ["--model", str(tiny_sentiment_model), "--output"]
    fails_with(["predict", "sentiment", *ref, str(tmp_path / "o.jsonl"), "--input", str(csv_in)],
               f"{csv_in}:3: empty text in field 'text'", capsys)
    fails_with(["predict", "sentiment", *ref, str(tmp_path / "o.jsonl"), "--input", str(jsonl_in)],
               f"{jsonl_in}:2: " + KEY_TWICE.format("text", "keys 1 and 2"), capsys)
    csv_in.write_text("id,text,,\n1,record profit and strong growth,,\n2,profit fell sharply,,\n")
    jsonl_in.write_text('{"text": "record profit", "meta": {"k": 1, "k": 2}}\n{"text": "profit fell"}\n')
    for src, texts in ((csv_in, ["record profit and strong growth", "profit fell sharply"]),
                       (jsonl_in, ["record profit", "profit fell"])):
        out = tmp_path / f"{src.name}.out.jsonl"
        code, _ = finpulse(["predict", "sentiment", *ref, str(out), "--input", str(src)], capsys)
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert code == 0 and [r["text"] for r in rows] == texts
        assert all(r["label"] in ("negative", "neutral", "positive") for r in rows)
    assert rows[0]["meta"] == {"k": 2}


@pytest.mark.parametrize(("name", "body", "line", "message"), [
    ("kb.csv", "id,question,answer,answer\ne1,how?,like this,like that\n", 1,
     HEADER_TWICE.format("answer", "columns 3 and 4")),
    ("kb.tsv", "id\tquestion\tanswer\ttopic\ttopic\ne1\thow?\tlike this\ta\tb\n", 1,
     HEADER_TWICE.format("topic", "columns 4 and 5")),  # extra columns are kept with the entry
    ("kb.jsonl", '{"id": "e1", "question": "how?", "answer": "like this", "answer": "like that"}\n', 1,
     KEY_TWICE.format("answer", "keys 3 and 4")),
])
def test_kb_build_and_load_refuse_a_column_or_key_named_twice(settings, tmp_path: Path, name: str, body: str,
                                                              line: int, message: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    kb = tmp_path / name
    kb.write_text(body)
    fails_with(["kb", "build", "--kb", str(kb), "--output", str(tmp_path / "index")], f"{kb}:{line}: {message}",
               capsys)
    assert not (tmp_path / "index").exists()
    fails_with(["kb", "load", "--kb", str(kb)], f"{kb}:{line}: {message}", capsys)


@pytest.mark.parametrize("option", ["--dev", "--pairs"])
@pytest.mark.parametrize(("name", "body", "line", "message"), [
    ("q.csv", "text,id,id\nhow do I do thing 1,e1,e2\n", 1, HEADER_TWICE.format("id", "columns 2 and 3")),
    ("q.jsonl", '{"text": "thing 1?", "id": "e1"}\n{"text": "thing 2?", "id": "e1", "id": "e2"}\n', 2,
     KEY_TWICE.format("id", "keys 2 and 3")),
])
def test_train_embeddings_refuses_query_pairs_naming_a_column_twice(settings, tmp_path: Path, option: str,
                                                                    name: str, body: str, line: int, message: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The pairs and dev files of `train embeddings` trained on (or scored) the last `id` column, silently."""
    kb, pairs = tmp_path / "kb.jsonl", tmp_path / name
    kb.write_text(KB)
    pairs.write_text(body)
    # --max-minutes: what the old reader did (trained on the last id) ends quickly
    fails_with(["train", "embeddings", "--kb", str(kb), option, str(pairs), "--domain", "bank",
                "--max-minutes", "0.05"], f"{pairs}:{line}: {message}", capsys)
    assert not (settings.registry_dir / "bank" / "embeddings" / "v1").exists()


def test_eval_sets_and_query_pairs_refuse_only_a_column_they_read_twice(tmp_path: Path) -> None:
    """The gate scored candidate and production against the last `label` column, silently; a column
    neither the gate nor the pairs reader reads may repeat."""
    from shared.gate import DomainConfig, read_eval_set
    from training.embeddings import read_pairs

    path = tmp_path / "eval.csv"
    path.write_text("text,label,label\nprofit rose,positive,negative\n")
    with pytest.raises(BadRow) as bad:
        read_eval_set(DomainConfig("news", eval_set=path))
    assert str(bad.value) == f"{path}:1: " + HEADER_TWICE.format("label", "columns 2 and 3")
    path = tmp_path / "eval.jsonl"
    path.write_text('{"text": "profit rose", "label": "positive", "label": "negative"}\n')
    with pytest.raises(BadRow) as bad:
        read_eval_set(DomainConfig("news", eval_set=path))
    assert str(bad.value) == f"{path}:1: " + KEY_TWICE.format("label", "keys 2 and 3")
    path.write_text('{"text": "profit rose", "label": "positive", "note": 1, "note": 2}\n')
    assert read_eval_set(DomainConfig("news", eval_set=path)) == (["profit rose"], ["positive"])
    pairs = tmp_path / "q.csv"
    pairs.write_text("text,id,note,note\nthing 1?,e1,a,b\n")
    assert read_pairs(pairs, {"e1"}) == [("thing 1?", "e1")]


def test_a_key_named_twice_in_training_jsonl_is_a_bad_row_that_skip_bad_counts(tmp_path: Path) -> None:
    from data_connectors.labelled import load_labelled

    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "profit rose", "label": "positive"}\n'
                    '{"text": "profit fell", "label": "negative", "label": "positive"}\n'
                    '{"text": "sales fell", "label": "negative", "note": 1, "note": 2}\n')  # note: never read
    with pytest.raises(BadRow) as bad:
        load_labelled(path)
    assert str(bad.value) == f"{path}:2: " + KEY_TWICE.format("label", "keys 2 and 3")
    data = load_labelled(path, skip_bad=True)
    assert data.texts == ["profit rose", "sales fell"] and [s["line"] for s in data.report.skipped] == [2]


def test_interaction_keys_match_case_insensitively_in_jsonl_too(tmp_path: Path) -> None:
    """`user_id` and `USER_ID` are one column of an interactions file: the row fitted the last one."""
    from data_connectors.interactions import read_interactions

    path = tmp_path / "r.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "i1"}\n{"user_id": "u2", "USER_ID": "u3", "item_id": "i2"}\n'
                    '{"user_id": "u4", "item_id": "i4", "note": 1, "note": 2}\n')
    with pytest.raises(BadRow) as bad:
        read_interactions(path, skip_bad=False)
    assert str(bad.value) == f"{path}:2: " + KEY_TWICE.format("user_id", "as 'user_id' in key 1 and 'USER_ID' in key 2")
    rows, report = read_interactions(path)
    assert [r.user_id for r in rows] == ["u1", "u4"] and [s["line"] for s in report.skipped] == [2]


def test_news_files_and_the_company_list_refuse_a_column_named_twice(tmp_path: Path) -> None:
    from data_connectors.news.files import CsvSource, JsonlSource
    from services.sentiment.linking import read_companies

    news = tmp_path / "news.csv"
    news.write_text("id,source,published_at,title,title\n1,wire,2024-01-02T00:00:00Z,Profit rose,Profit fell\n")
    with pytest.raises(BadInput, match=r"news.csv:1: the header names the column 'title' twice .*nothing was ingested"):
        CsvSource(news).read()
    jsonl = tmp_path / "news.jsonl"
    jsonl.write_text('{"id": "1", "title": "Profit rose", "title": "Profit fell"}\n{"id": "2", "title": "ok"}\n')
    batch = JsonlSource(jsonl).read()
    assert [r["id"] for r in batch.rows] == ["2"]
    assert batch.rejected == [{"line": 1, "reason": KEY_TWICE.format("title", "keys 2 and 3")}]
    companies = tmp_path / "companies.csv"
    companies.write_text("ticker,name,Name\nACME,Acme Corp,Acme Inc\n")
    with pytest.raises(BadInput) as bad:
        read_companies(companies)
    assert str(bad.value) == f"company list {companies}:1: " + HEADER_TWICE.format(
        "name", "as 'name' in column 2 and 'Name' in column 3")


def test_unlabelled_text_reads_only_its_text_column(tmp_path: Path) -> None:
    from data_connectors.base import read_texts

    path = tmp_path / "mlm.csv"
    path.write_text("text,note,note\nprofit rose,a,b\n")
    assert read_texts(path) == ["profit rose"]
    path.write_text("text,text\nprofit rose,profit fell\n")
    with pytest.raises(BadRow, match="the header names the column 'text' twice"):
        read_texts(path)
