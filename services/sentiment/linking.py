"""Ticker linking: cashtags, exchange prefixes, tickers in parentheses, company names.

A :class:`Linker` is built once from the shipped ``companies.csv`` plus an optional
user CSV (``ticker,name,aliases`` with ``|``-separated aliases). Explicit forms
(``$ACME``, ``NASDAQ:ACME``) are trusted for any ticker, words on the stoplist too (``$ON``,
``NYSE:IT``, ``$A``: ON Semiconductor, Gartner, Agilent), except a cashtag of a currency or an
abbreviation that names no company (:data:`NOT_COMPANIES`: ``$USD``, ``$CEO``). A cashtag not in
capitals (``$aapl``, as often typed on social media) counts only for a listed ticker, so ``$us``
or ``$fun`` link nothing. Rules that keep words from becoming tickers:

- a symbol in parentheses counts when it is a listed ticker, or when the name before it spells
  it (its letters in order, from the first letter of one of the last four words: ``Acme Widgets
  (ACME)``, ``Xerox (XRX)``): ``NEW YORK (AP)``, ``(AFP)``, ``(PHOTO)`` are datelines and
  captions, not companies;
- a bare all-caps word counts only for a listed ticker not on the stoplist: of 3+ letters, or of
  2 with a corporate word in its sentence (``GE shares jump 3%``; see below). In a shouted text
  (three quarters of its 3+ words in capitals: ``CAT FOOD MAKER RECALLS``), where every word looks
  like a ticker, only one of 3+ letters that is no English word (:data:`WORD_TICKERS`) counts,
  and company names match in any case (``BERKSHIRE HATHAWAY BUYS APPLE STAKE``);
- a company name that is also a common word or name (:data:`AMBIGUOUS_NAMES`: Visa, Ford, ...)
  counts only with a second signal: a corporate word in its sentence (shares, earnings, CEO,
  plant, a percentage, ...: :data:`_CORPORATE`; an exchange prefix such as ``NYSE:JPM`` belongs to
  its own ticker and is not one) or another mention of the same ticker in the article.

Share classes are written with a dot (``BRK-B`` is ``BRK.B``) and typographic apostrophes are
read as ``'`` (``McDonald’s``), full-width forms as their ASCII letters (``＄ＡＣＭＥ``, NFKC).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_connectors.base import repeated_column
from shared.errors import BadInput
from shared.text import normal_text

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
# Cashtags that name no company: currencies ("$USD strengthens") and abbreviations. Any other
# stoplist word written as a cashtag is a ticker (finance QA: fin_tweets' $A Agilent, $DO, $ET,
# $PE, $ON and $UN linked nothing).
_NOT_COMPANY_WORDS = """
USD EUR GBP JPY CNY CHF CAD AUD HKD EURO US USA UK EU API ATM CEO CFO CIO COO CTO CPI DOJ EBIT EBITDA
ECB EPS ESG ETF FAQ FBI FDA FED FOMC FTC FX FY GAAP GDP HQ IMF IPO IRS LLC LTD INC CORP PLC MBA OECD QE
ROI SEC SPAC VP WHO YOY YTD CAGR LTM TTM ARPU COVID AGM OTC REIT ADR EST PST GMT UTC MLN BLN KW KWH MW
MWH GW GWH TWH BBL NYSE NASDAQ PDF
"""
NOT_COMPANIES = frozenset(_NOT_COMPANY_WORDS.split())
# English words that are (or may be listed as) tickers: in a shouted text they are words
# ("STOCKS FALL AS COST PRESSURES MOUNT"), not Costco; mixed-case prose still links them bare.
_ENGLISH_WORDS = """
ALL ARE NOW LOW KEY FAST PLAY FUN CAKE BIG RUN EAT CAR CARS TRIP GOOD HAS LIFE WELL MAIN BEST DOG COST
CAT SHOP META PEP DIS UBER AIR ALLY ANY APP ARM BAND BILL BIO BOX CASH CORE DAY DOC EARN EDIT EYE FIVE
FOX FREE GAME GAS GOLD HOME HOOD ICE JOB JOBS KIDS LAND LOVE MAN MET NEXT NICE OIL ONE OPEN PAY PINS
POOL POST RACE RARE REAL ROCK SAVE SEE SKY SNOW SPOT SUN TAP TEAM TOP TWO TEN WAY WORK YOU HIGH SAY
SAYS CUT CUTS HIT WIN WINS BID DEAL RATE BANK FUND DATA TECH CHIP FIRE MORE LIVE SAFE LOAN RENT HOPE
PLUS MOVE GAIN LOSS RISE FALL DROP JUMP SINK LEAD PLAN TALK CALL BEAT MISS WARN PICK BOOM BULL BEAR
"""
WORD_TICKERS = frozenset(_ENGLISH_WORDS.split())

_T = r"[A-Z]{1,5}(?:[.\-][A-Z])?"  # a share class may be written BRK.B or BRK-B
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,5}(?:[.\-][A-Za-z])?)\b")
_PREFIX = re.compile(rf"\b(?:NASDAQ|NYSE|NYSEARCA|NYSEAMERICAN|AMEX|LSE|TSX|XETRA|BATS)\s*:\s*({_T})\b")
_PAREN = re.compile(rf"\(\s*({_T})\s*\)")
_BARE = re.compile(rf"\b({_T})\b")
# What a bare two-letter ticker needs right after it (past a list of others: "MS, GS earnings"): its stock's
# words or a price move. A corporate word anywhere in the sentence linked "HD TV sales up 10%", "MS drug trial
# shows 30% fewer relapses", "GM crops ban hits farmers' profits" (regression QA).
_STOCK_WORDS = (r"(?:shares?|stocks?|earnings|results|revenues?|stake|Inc|Corp|CEO|CFO)\b"
                r"|(?:is |was )?(?:up|down|rose|fell|gained|lost|jumped|slid|climbed|dropped|rallied|sank|plunged|"
                r"surged|soared|tumbled)\s+[\d$]")
_STOCK_AFTER = re.compile(rf"(?:,?\s+(?:and\s+|&\s+)?[A-Z]{{2,5}}\b)*(?:'s)?\s+(?:{_STOCK_WORDS})")
_STOCK_BEFORE = re.compile(r"\b(?:shares?|stocks?) (?:of|in)\s+$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'$(])")
_WORD = re.compile(r"[A-Za-z]{2,}")
_NAME_WORD = re.compile(r"[A-Za-z][\w&'.\-]*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})

# Ticker symbols as stored and asked for: capitals, digits, "." and "-", at most 16.
TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
_SHARE_CLASS = re.compile(r"^([A-Z0-9]{1,6})-([A-Z])$")

# Company names that are also everyday words or people's names ("Visa rules for students",
# "Harrison Ford stars"): linked only with a second signal (see the module docstring).
AMBIGUOUS_NAMES = frozenset({"Visa", "Ford", "Lilly", "Oracle", "Coke", "Chevron", "Caterpillar"})
_CORPORATE = re.compile(
    r"\b(?:shares?|stocks?|stake|earnings|revenues?|profits?|sales|results|dividends?|quarter(?:ly)?|"
    r"guidance|outlook|forecasts?|invest(?:s|ed|ing|ments?|ors?)?|analysts?|shareholders?|CEO|CFO|"
    r"chief executive|Inc|Corp|company|merger|acquisitions?|acquires?|acquired|buyback|deal|IPO|"
    r"valuation|layoffs|jobs|workers|plants?|factor(?:y|ies)|recalls?|vehicles?|trucks?|cars?|SUVs?|EVs?|"
    r"prices?|fees|payments?|billion|million|NYSE|Nasdaq|Wall Street|"
    # a rating action or estimates: "Goldman downgrades Ford", "Oracle beats estimates" (finance QA)
    r"(?:up|down)grade[sd]?|price targets?|estimates)\b|\d(?:%| percent)", re.IGNORECASE)

# Banks and brokers whose analysts rate other companies' shares: "Goldman Sachs downgrades Netflix
# to sell" is news about Netflix (finance QA: GS linked at relevance 1.0 and scored negative;
# fin_tweets' "Wells Fargo Downgrades Netflix" and "... - BofA" linked WFC and BAC).
BROKERS = frozenset({"JPM", "BAC", "WFC", "C", "GS", "MS"})
_GRADES = (r"(?:strong )?buy|sell|hold|neutral|overweight|underweight|equal[- ]?weight|outperform|underperform|"
           r"(?:market|sector|peer) perform|in[- ]line|accumulate|reduce")
# Words that make a sentence a rating action, whatever its verb.
_RATING = re.compile(rf"\b(?:(?:up|down)grad\w*|price targets?|target price|PT|coverage|ratings?|rated|top pick|"
                     rf"(?:to|at|with|as|reiterates?|reiterated|maintains?|keeps?) (?:an? )?(?:{_GRADES}))\b",
                     re.IGNORECASE)
# After a broker issuing the rating: "Goldman Sachs (GS) analysts downgrade", "JPMorgan raises
# price target on"; not "Goldman downgraded to sell at ..." (Goldman rated, passive).
_RATER_VERB = re.compile(
    r"\)?(?:'s)?(?:\s*\([^)]{1,20}\))?(?:\s+(?:Group|Securities|Research|Global|Investment|analysts?|strategists?))*\s+"
    r"(?:(?:up|down)grade[sd]?|initiat(?:es?|ed)|reiterat(?:es?|ed)|reinstat(?:es?|ed)|rais(?:es?|ed)|cuts?|"
    r"lower(?:s|ed)?|lifts?|lifted|boost(?:s|ed)?|hik(?:es?|ed)|trim(?:s|med)?|slash(?:es|ed)?|starts?|started|"
    r"resum(?:es?|ed)|assum(?:es?|ed)|maintain(?:s|ed)?|keeps?|kept|rates?|rated)\b"
    r"(?!\s+(?:to|at|by|from|on|in|after|amid|as|for)\b)", re.IGNORECASE)
# Before a broker credited with the rating: "Netflix downgraded to sell at|by|from Goldman",
# "Netflix cut to neutral - BofA".
_RATER_CREDIT = re.compile(r"(?:\b(?:at|by|from)|\s[-\u2013\u2014|])\s+(?:analysts?\s+(?:at|from)\s+)?$",
                           re.IGNORECASE)

# Everyday phrases holding a company name that are not the company, matched in any case
# (finance QA: "Amazon rainforest fires worsen" linked AMZN, "Apple pie prices soar" AAPL, "Citi
# Field hosts Mets" C, "Oracle of Omaha Warren Buffett buys Chevron stake" ORCL). Name -> the
# words that may come before it, and those that may come after it.
_EVERYDAY = {
    "Amazon": ("Brazilian|Peruvian|Colombian|Ecuadorian|Bolivian",
               "rain ?forests?|rivers?|basin|jungles?|forests?|region|deforestation|delta|tribes?"),
    "Apple": ("Big|Adam's|crab|candy|caramel|toffee",
              "pies?|juice|cider|orchards?|trees?|sauce|seeds?|picking|harvests?|growers?|crops?|farmers?|"
              "vinegar|blossoms?|crumble|tarts?|strudel"),
    "Citi": ("", "Field|Bike|Open"),
    "Oracle": ("", "of Omaha|of Delphi|Park|Arena"),
    "Ford": ("Harrison|Gerald|Betty|Tom", "Foundation|'s Theatre|'s Theater"),
    "Chevron": ("", "doctrine|deference"),
    "Merck": ("", "KGaA"),
    "Berkshire": ("West|Royal", "County|Hills|Mountains"),
    "Wells Fargo": ("", "Center|Arena"),
    "Bank of America": ("", "Stadium"),
    "Alphabet": ("", "soup|City"),
    "Tesla": ("Nikola", ""),
}
_EVERYDAY_RE = re.compile("|".join(
    part for name, (before, after) in _EVERYDAY.items()
    for part in ((rf"\b(?:{before})\s+{re.escape(name)}\b" if before else ""),
                 (rf"\b{re.escape(name)}\s+(?:{after})\b" if after else "")) if part), re.IGNORECASE)
_KIND_RANK = {"weak": 0, "name": 1, "explicit": 2}

# Relevance of a mention: explicit forms and title mentions weigh more than a name in passing.
W_TITLE, W_EXPLICIT, W_NAME = 1.0, 0.8, 0.5


@dataclass
class Company:
    ticker: str
    name: str
    aliases: list[str] = field(default_factory=list)


def _company_column(name: str) -> str | None:
    """The column a company list's header name is read as (case-insensitively), None for one never read."""
    key = name.lower()
    return key if key in ("ticker", "name", "aliases") else None


def read_companies(path: str | Path) -> list[Company]:
    """Read a ``ticker,name,aliases`` CSV; a bad file names itself (and the line) and the fix.

    Strict, as ``news relink`` applies the list to all history: a headerless file (its first row
    read as the header left no companies, and a relink then removed every link), an empty or
    non-CSV one, a ticker the API would refuse, a ticker listed twice, or a header naming a column
    twice (``ticker,name,Name``: the row kept the last, whichever the file meant) is refused."""
    path = Path(path)
    columns = "first line must be the header ticker,name,aliases"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"company list {path}: {exc}") from None
    if not header:
        raise BadInput(f"company list {path}: empty file; {columns}")
    if "ticker" not in header:
        raise BadInput(f"company list {path}:1: {columns} (found {','.join(header)[:60]!r})")
    names = [(h or "").strip() for h in (reader.fieldnames or [])]  # as written, for the message
    if (repeat := repeated_column(path, 1, names, _company_column)) is not None:
        raise BadInput(f"company list {repeat}")
    out = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): v for k, v in row.items() if isinstance(v, str)}
        raw = (row.get("ticker") or "").strip()
        if not raw:
            raise BadInput(f"company list {path}:{i}: missing ticker (columns: ticker,name,aliases)")
        ticker = ticker_symbol(raw)
        if ticker is None:
            raise BadInput(f"company list {path}:{i}: invalid ticker {raw[:20]!r} (letters, digits, '.' and '-', "
                           "at most 16)")
        if ticker in seen:
            raise BadInput(f"company list {path}:{i}: ticker {ticker} listed twice (first on line {seen[ticker]})")
        seen[ticker] = i
        aliases = [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()]
        out.append(Company(ticker, (row.get("name") or "").strip(), aliases))
    return out


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def ticker_symbol(value: str) -> str | None:
    """The one normaliser of a ticker typed by a user or a feed (API path and query, CLI, explicit
    ``tickers``, feed tags): ``' $brk-b'`` -> ``BRK.B``; None when it is not a ticker symbol."""
    t = _SHARE_CLASS.sub(r"\1.\2", value.strip().lstrip("$").upper())
    return t if TICKER.match(t) else None


def shouted(text: str) -> bool:
    """Three quarters of the words (at least 3) in capitals: every word there looks like a ticker."""
    words = _WORD.findall(text)
    return len(words) >= 3 and 4 * sum(w.isupper() for w in words) >= 3 * len(words)


def _sentence_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Bounds of the sentence of ``text`` holding ``text[start:end]``."""
    lo = max(text.rfind(c, 0, start) for c in ".!?\n") + 1
    his = [i for i in (text.find(c, end) for c in ".!?\n") if i >= 0]
    return lo, min(his, default=len(text))


def _about_the_stock(text: str, start: int, end: int) -> bool:
    """A two-letter symbol at ``text[start:end]`` names its stock: not glued to "&", "-" or a digit ("PG&E",
    "PG-13"), and with its stock's words right after it or "shares of" right before it."""
    if (start > 0 and text[start - 1] in "&-") or (end < len(text) and (text[end] in "&-" or text[end].isdigit())):
        return False
    return bool(_STOCK_AFTER.match(text, end)) or bool(_STOCK_BEFORE.search(text[max(0, start - 20):start]))


def _sentence_at(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` holding ``text[start:end]``."""
    lo, hi = _sentence_span(text, start, end)
    return text[lo:hi]


# A ticker found at text[start:end], and how ('explicit', 'name' or 'weak').
Hit = tuple[str, str, int, int]


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
        pattern = r"(?<![\w&])(?:" + "|".join(re.escape(a) for a in alts) + r")(?![\w&])"
        self._name_re = re.compile(pattern) if alts else None
        # shouted text writes names in capitals ("BERKSHIRE HATHAWAY BUYS APPLE STAKE"): matched
        # in any case there, and read back as the alias it spells
        self._loud_name_re = re.compile(pattern, re.IGNORECASE) if alts else None
        self._folded = {a.casefold(): a for a in alts}

    @classmethod
    def from_files(cls, extra: str | Path | None = None) -> Linker:
        companies = read_companies(STARTER_LIST)
        if extra:
            companies += read_companies(extra)
        return cls(companies)

    def _symbol(self, raw: str) -> str:
        """``BRK-B``/``BRK.B`` -> ``BRK.B``; a class suffix the list does not know on a listed
        ticker (``GM-F`` in "GM-F partnership") falls back to the ticker."""
        t = raw.upper().replace("-", ".")
        base = t.split(".", 1)[0]
        return base if t not in self.known and base in self.known else t

    def mentions(self, text: str, loud: bool | None = None) -> dict[str, str]:
        """Ticker -> strongest mention kind found in ``text``: 'explicit', 'name', or 'weak' (an
        ambiguous company name without corporate words around it: counts only with another
        mention, see :meth:`link`). ``loud``: treat the text as shouted (default: judge it).
        A broker issuing a rating on another company in its sentence is no mention (:data:`BROKERS`)."""
        text = normal_text(text).translate(_APOSTROPHES)  # ＄ＡＣＭＥ is $ACME
        loud = shouted(text) if loud is None else loud
        hits = self._hits(text, loud)
        found: dict[str, str] = {}
        for t, kind, start, end in hits:
            if t in BROKERS and self._rates_another(text, t, start, end, hits):
                continue
            if _KIND_RANK[kind] > _KIND_RANK.get(found.get(t, ""), -1):
                found[t] = kind
        return found

    def _hits(self, text: str, loud: bool) -> list[Hit]:
        """Every ticker mention in ``text``, explicit forms first, then names."""
        hits: list[Hit] = []
        for m in _CASHTAG.finditer(text):
            t = self._symbol(m.group(1))
            if t in self.known or (m.group(1).isupper() and t not in NOT_COMPANIES):
                hits.append((t, "explicit", *m.span()))
        for m in _PREFIX.finditer(text):  # "NYSE: IT" is how Gartner's own releases name it
            hits.append((self._symbol(m.group(1)), "explicit", *m.span()))
        for m in _PAREN.finditer(text):
            t = self._symbol(m.group(1))
            if t in self.known or (t not in STOPLIST and len(t) >= 2 and self._named_before(text, m.start(), t)):
                hits.append((t, "explicit", *m.span()))
        for m in _BARE.finditer(text):
            t = self._symbol(m.group(1))
            if self._bare_ticker(t, text, m.start(), m.end(), loud):
                hits.append((t, "explicit", *m.span()))
        name_re = self._loud_name_re if loud else self._name_re
        if name_re is None:
            return hits
        everyday = [m.span() for m in _EVERYDAY_RE.finditer(text)]
        for m in name_re.finditer(text):
            if any(lo <= m.start() and m.end() <= hi for lo, hi in everyday):
                continue  # "Apple pie", "Citi Field": not the company
            alias = self._folded[m.group(0).casefold()] if loud else m.group(0)
            kind = ("weak" if alias in AMBIGUOUS_NAMES
                    and not self._corporate(_sentence_at(text, m.start(), m.end())) else "name")
            hits.append((self.names[alias], kind, *m.span()))
        return hits

    @staticmethod
    def _rates_another(text: str, broker: str, start: int, end: int, hits: list[Hit]) -> bool:
        """The broker at ``text[start:end]`` issues a rating on another company of its sentence:
        "Goldman Sachs downgrades Netflix to sell", "Netflix upgraded to buy at Goldman",
        "Netflix cut to neutral - BofA". Alone ("Goldman Sachs raises its dividend") it is the subject."""
        lo, hi = _sentence_span(text, start, end)
        if not any(t != broker and kind != "weak" and lo <= a < hi for t, kind, a, _ in hits):
            return False
        before, after = text[lo:start], text[end:hi]
        return bool(_RATING.search(text[lo:hi])
                    and (_RATER_VERB.match(after) or (_RATER_CREDIT.search(before) and _RATING.search(before))))

    def _bare_ticker(self, t: str, text: str, start: int, end: int, loud: bool) -> bool:
        """A bare all-caps word ``t`` at ``text[start:end]`` is a ticker: a listed one off the
        stoplist, of 3+ letters, or of 2 right beside its stock's words (finance QA: "GM up 3%" and
        "GE shares jump 3%" linked nothing; :func:`_about_the_stock`). Shouted, where every word is in capitals, only
        3+ letters that are no English word count ("TSLA SHARES PLUNGE", not "CAT FOOD MAKER")."""
        if t not in self.known or t in STOPLIST:
            return False
        if loud:
            return len(t) >= 3 and t not in WORD_TICKERS
        return len(t) >= 3 or (len(t) == 2 and _about_the_stock(text, start, end))

    @staticmethod
    def _corporate(sentence: str) -> bool:
        """A corporate word in ``sentence``; another ticker's exchange prefix ("NYSE:JPM") is
        not one, or "NYSE:JPM Visa rules for students tightened" would link Visa."""
        return bool(_CORPORATE.search(_PREFIX.sub(" ", sentence)))

    @staticmethod
    def _named_before(text: str, at: int, symbol: str) -> bool:
        """The name just before ``at`` spells ``symbol``: its letters appear in order in the last
        words, from the first letter of one of them ("Xerox (XRX)", "Cedar Realty Trust Inc (CDR)");
        "NEW YORK (AP)" or "prices jump (PHOTO)" do not."""
        letters = symbol.split(".", 1)[0].casefold()
        words = [w.casefold() for w in _NAME_WORD.findall(text[max(0, at - 80):at])[-4:]]
        for k in range(len(words)):
            rest = iter("".join(words[k:]))
            if words[k].startswith(letters[0]) and all(c in rest for c in letters):
                return True
        return False

    def link(self, title: str, body: str = "") -> dict[str, float]:
        """Ticker -> relevance in (0, 1]: title or explicit mentions weigh most. A 'weak' mention
        (an ambiguous name alone) counts only when the article mentions that ticker otherwise too."""
        heads, rest = self.mentions(title), self.mentions(body)
        sure = {t for found in (heads, rest) for t, kind in found.items() if kind != "weak"}
        out: dict[str, float] = {}
        for t, kind in heads.items():
            if kind != "weak" or t in sure:
                out[t] = W_TITLE
        for t, kind in rest.items():
            if kind != "weak" or t in sure:
                w = W_EXPLICIT if kind == "explicit" else W_NAME
                out[t] = max(out.get(t, 0.0), w)
        for t in [t for t in out if t in BROKERS and t not in heads and len(out) > 1]:
            if self._only_rates(t, body):
                del out[t]
        return out

    def _only_rates(self, broker: str, body: str) -> bool:
        """Every body sentence naming ``broker`` is a rating action: it rates the article's company
        there ("Analysts at Goldman Sachs cut it to sell"), where "it" is no company :meth:`_rates_another`
        can see; scored on that sentence alone, Goldman was charged the downgrade (regression QA)."""
        own = [s for s in split_sentences(body) if broker in self.mentions(s)]
        return bool(own) and all(_RATING.search(s) for s in own)

    def text_for(self, ticker: str, title: str, body: str, max_chars: int = 400) -> str:
        """The text to score for ``ticker``: see :meth:`texts_for`."""
        return self.texts_for([ticker], title, body, max_chars)[ticker]

    def texts_for(self, tickers: list[str], title: str, body: str, max_chars: int = 400) -> dict[str, str]:
        """Ticker -> the text to score for it. One the title names: title plus the body sentences
        that mention it (title plus lead when none does). One only the body mentions: those
        sentences alone, as the headline is about something else (finance QA: "Tesla recalls 2
        million vehicles" gave Ford and GM, named in passing, the recall's negative score). One
        the text never mentions (given, a feed tag): title plus lead.

        Each sentence's mentions are read once: per ticker it cost tickers x sentences (1000
        tickers on a 20k-character body: 22 s of CPU)."""
        sentences = split_sentences(body)
        loud = shouted(body)
        mentioned: dict[str, list[str]] = {}
        for s in sentences:
            for t in self.mentions(s, loud):
                mentioned.setdefault(t, []).append(s)
        in_title = self.mentions(title) if title else {}

        def parts(t: str) -> list[str]:
            own = mentioned.get(t)
            return own if own and t not in in_title else [title, *(own or sentences[:2])]

        return {t: " ".join(parts(t)).strip()[:max_chars] for t in tickers}
