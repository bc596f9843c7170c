"""Ticker linking: cashtags, exchange prefixes, tickers in parentheses, company names.

A :class:`Linker` is built once from the shipped ``companies.csv`` plus an optional
user CSV (``ticker,name,aliases`` with ``|``-separated aliases). Explicit forms
(``$ACME``, ``NASDAQ:ACME``) are trusted for any ticker; parentheses and bare
all-caps words only for listed tickers or words that are not on the stoplist. A cashtag
not in capitals (``$aapl``, as often typed on social media) counts only for a listed ticker,
so ``$us`` or ``$fun`` link nothing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import BadInput

STARTER_LIST = Path(__file__).with_name("companies.csv")

# All-caps words that look like tickers in financial prose but are not.
_STOPWORDS = """
A I AI AM AN AND API AR AS AT ATM BE BY CEO CFO CIO COO CTO CPI DC DOJ DO EBIT EBITDA ECB EPS ESG
ETF EU EV FAQ FBI FDA FED FOMC FTC FX FY GAAP GDP GO HQ HR II III IMF IN IPO IRS IS IT IV LLC LP
M&A MBA ML NEW NO NOT NYSE NASDAQ OECD OF OK ON OR PC PDF PE PM PR Q1 Q2 Q3 Q4 QE R&D ROI SEC SO
SPAC TO TV UK UN UP US USA USD EUR GBP JPY CNY VP WHO YOY YTD CAGR LTM TTM ARPU SaaS COVID
NOTE AGM OTC REIT ADR EST PST GMT UTC ET PT LTD INC CORP PLC AG SA NV THE FOR BUY SELL HOLD
EURO MLN BLN KW KWH MW MWH GW GWH TWH BBL
"""
STOPLIST = frozenset(_STOPWORDS.split())

_T = r"[A-Z]{1,5}(?:\.[A-Z])?"
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z])?)\b")
_PREFIX = re.compile(rf"\b(?:NASDAQ|NYSE|NYSEARCA|NYSEAMERICAN|AMEX|LSE|TSX|XETRA|BATS)\s*:\s*({_T})\b")
_PAREN = re.compile(rf"\(\s*({_T})\s*\)")
_BARE = re.compile(rf"\b({_T})\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'$(])")

# Relevance of a mention: explicit forms and title mentions weigh more than a name in passing.
W_TITLE, W_EXPLICIT, W_NAME = 1.0, 0.8, 0.5


@dataclass
class Company:
    ticker: str
    name: str
    aliases: list[str] = field(default_factory=list)


def read_companies(path: str | Path) -> list[Company]:
    """Read a ``ticker,name,aliases`` CSV; a bad file names itself and the fix."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"company list {path}: {exc}") from None
    out = []
    for i, row in enumerate(rows, start=2):
        ticker = (row.get("ticker") or "").strip().upper()
        if not ticker:
            raise BadInput(f"company list {path}:{i}: missing ticker (columns: ticker,name,aliases)")
        aliases = [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()]
        out.append(Company(ticker, (row.get("name") or "").strip(), aliases))
    return out


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


class Linker:
    """Finds the tickers an article is about, with a relevance weight for each."""

    def __init__(self, companies: list[Company]):
        self.names: dict[str, str] = {}
        self.known: set[str] = set()
        for c in companies:
            self.known.add(c.ticker)
            for alias in [c.name, *c.aliases]:
                if alias:
                    self.names[alias] = c.ticker
        alts = sorted(self.names, key=len, reverse=True)
        self._name_re = (re.compile(r"(?<![\w&])(?:" + "|".join(re.escape(a) for a in alts) + r")(?![\w&])")
                         if alts else None)

    @classmethod
    def from_files(cls, extra: str | Path | None = None) -> Linker:
        companies = read_companies(STARTER_LIST)
        if extra:
            companies += read_companies(extra)
        return cls(companies)

    def mentions(self, text: str) -> dict[str, str]:
        """Ticker -> strongest mention kind ('explicit' or 'name') found in ``text``."""
        found: dict[str, str] = {}
        for m in _CASHTAG.finditer(text):
            t = m.group(1).upper()
            if t in self.known or (t == m.group(1) and t not in STOPLIST):
                found[t] = "explicit"
        for m in _PREFIX.finditer(text):
            if m.group(1) not in STOPLIST or m.group(1) in self.known:
                found[m.group(1)] = "explicit"
        for m in _PAREN.finditer(text):
            t = m.group(1)
            if t in self.known or (t not in STOPLIST and len(t) >= 2):
                found[t] = "explicit"
        for m in _BARE.finditer(text):
            t = m.group(1)
            if t in self.known and len(t) >= 3 and t not in STOPLIST:
                found.setdefault(t, "explicit")
        if self._name_re is not None:
            for m in self._name_re.finditer(text):
                found.setdefault(self.names[m.group(0)], "name")
        return found

    def link(self, title: str, body: str = "") -> dict[str, float]:
        """Ticker -> relevance in (0, 1]: title or explicit mentions weigh most."""
        out: dict[str, float] = {}
        for t in self.mentions(title):
            out[t] = W_TITLE
        for t, kind in self.mentions(body).items():
            w = W_EXPLICIT if kind == "explicit" else W_NAME
            out[t] = max(out.get(t, 0.0), w)
        return out

    def text_for(self, ticker: str, title: str, body: str, max_chars: int = 400) -> str:
        """The text to score for ``ticker``: title plus the sentences that mention it.

        When no body sentence mentions the ticker, title plus lead stands in.
        """
        sentences = split_sentences(body)
        own = [s for s in sentences if ticker in self.mentions(s)]
        picked = own or sentences[:2]
        text = " ".join([title, *picked]).strip()
        return text[:max_chars]
