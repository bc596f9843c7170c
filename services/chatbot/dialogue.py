"""Turn-level decisions: answer, clarify ("Did you mean…") or hand off to a person.

Pure functions over retrieval hits and a small conversation state, so the policy is
tested without Flask, Redis or a model. The service keeps the state in Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from services.chatbot.kb import Hit
from services.chatbot.lexical import match_key

# A request for a person, not a question that mentions one ("at what age can a person open a
# savings account?", "which mobile operator...", "I sent money to a person"): a verb of asking
# with a person after it, a real/live/human one, or a message that is only that.
_NOUN = (r"(?:human(?: being)?|person|people|agent|representative|rep|operator|someone|somebody|"
         r"staff(?: member)?|advis[eo]r|manager|customer (?:service|support|care))")
_DET = r"(?:(?:a|an|the|some|your|one of your|real|live|actual|human|bank)\s+)*"
_HUMAN = re.compile(
    r"\b(?:real|live|actual) (?:person|human|agent|people|representative)\b"
    r"|\bhuman (?:agent|representative|rep|being|support)\b"
    rf"|\b(?:speak|talk|chat|(?:connect|transfer|put) me(?: through)?) (?:to|with) {_DET}{_NOUN}s?\b"
    rf"|\b(?:get|give|want|need|see|find) (?:me )?{_DET}(?:human|agent|representative|operator|advis[eo]r|"
    r"manager|supervisor)s?\b(?!')"  # not "a manager's cheque"
    rf"|\bget me {_DET}(?:person|someone|somebody)\b"
    # "is there a person I can talk to", "is there anyone I could speak with"
    r"|\b(?:is|are) there (?:(?:a|an|any|some)\s+)?(?:real |live |actual )?(?:person|human|agent|people|"
    r"representative|one|anyone|anybody|someone|somebody) (?:i|we) (?:can|could|may) (?:talk|speak|chat)\b"
    # "can someone call me", "could an agent ring me": not "can someone else use my card?"
    r"|\b(?:can|could|will|would) (?:someone|somebody|a person|an agent|a representative) (?:please )?"
    r"(?:call|ring|phone) me\b"
    r"|\bcall me back\b"
    # QA: "live chat" and "escalate" alone were looked up; a question about them ("is live chat open on
    # Sundays?", "how do I escalate a complaint?") still is
    r"|^(?:(?:a|the) )?live chat(?: please| pls| now)?$"
    r"|\b(?:want|need|start|open|get|give me|connect me to|take me to) (?:a |the )?live chat\b"
    r"|^(?:please )?escalate(?: this| it| me| my (?:case|issue|complaint|problem|query))?(?: please| now)?$"
    r"|\b(?:i want to|i'd like to|i need to|please|can you|could you) escalate (?:this|it|me|my (?:case|issue|"
    r"complaint|problem|query))\b"
    rf"|\bescalate (?:(?:this|it|me|my (?:case|issue|complaint|problem|query)) )?to {_DET}{_NOUN}s?\b"
    rf"|^(?:{_DET}{_NOUN}|human|agent)(?: please| pls| now)?$", re.I)
# "do I need to speak to a representative to change my PIN?", "do I need an agent to file a claim?" and
# "how do I find an agent near me for cash deposit" are questions for the FAQ (QA: each opened a ticket)
_ASKS_IF_NEEDED = re.compile(r"\b(?:do|does|would|will|must|should) (?:i|we|you|one) (?:need|have) "
                             r"(?:to (?:speak|talk|chat)\b|(?:an?|the|any) (?:human|person|agent|representative|"
                             r"advis[eo]r|manager)s?\b)"
                             r"|\b(?:find|locate|nearest|closest) (?:(?:an?|the|your) )?(?:(?:nearest|closest|"
                             r"local) )?(?:agent|advis[eo]r|representative)s? (?:near|nearby|close to|around|in)\b",
                             re.I)
# A request said not to be wanted: "I don't want to talk to a human, just tell me...", "please don't transfer me
# to an agent" (QA: each opened a ticket). The negation leads the request in its clause, with only words of
# wanting between them: "I don't understand, talk to a human" is a request.
_NEGATED = re.compile(r"\b(?:don't|dont|do not|doesn't|does not|didn't|did not|never|no need|without|rather not)"
                      r"(?: (?:really|ever|even|actually|want|wanna|need|wish|have|like|ask|asked|to|be|i|me|"
                      r"a|an|the|you|it))* ?$", re.I)
_CLAUSES = re.compile(r"[,;.!?:\u2026]+|\s(?:but|just|instead)\s", re.I)
_MARKS = re.compile(r"[^\w'\s]+")
# Short follow-ups ("and for credit cards?", "what about savings?") lean on the previous turn.
_FOLLOW_UP = re.compile(r"^\s*(and|what about|how about|also|same for|what if|or)\b", re.I)

# Small talk, the whole message: a greeting, thanks, a goodbye or an "ok" is not a question to
# look up (it got "Did you mean" with absurd suggestions and counted as an unsure turn).
_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|howdy|good (?:morning|afternoon|evening|day))"
                       r"(?: there| all| team| everyone)?$")
_HELPED = r"(?:that|this|it) (?:helped|helps|was (?:very |really )?helpful|is (?:very |really )?helpful)"
_THANKS = re.compile(r"^(?:(?:ok|okay|great|perfect|cool|nice|brilliant|awesome|good) )?"
                     r"(?:thanks?|thank you|thankyou|thx|ty|cheers|many thanks|much appreciated)"
                     rf"(?: (?:so much|very much|a lot|a bunch|again|all the same))?(?: {_HELPED})?$"
                     rf"|^{_HELPED}(?: thanks?| thank you)?$")
_BYE = re.compile(r"^(?:(?:ok|okay|thanks|thank you) )*(?:bye|bye bye|goodbye|good bye|see you|see ya|cya|"
                  r"good night|have a (?:good|nice) (?:day|one))(?: now| then| for now)?$")
_OK = re.compile(r"^(?:ok|okay|k|kk|okey|alright|all right|cool|great|got it|understood|fine|noted|perfect|"
                 r"sure|i see)(?: thanks?| thank you)?$")
# "No" to "Is there anything else I can help you with?": QA's "thanks" -> "no" -> "nope" -> "no, that is all"
# was looked up three times, found nothing and opened a low_confidence ticket. It ends the chat politely.
_ALL = r"(?:(?:that's|thats|that is) (?:all|it|everything)|all good|all set|nothing else|nothing more|i'm good|im good)"
_DONE = re.compile(rf"^(?:(?:ok|okay|thanks|thank you) )*(?:(?:no|nope|nah)(?: (?:thanks?|thank you|thx))?(?: {_ALL})?"
                   rf"|{_ALL})(?: (?:for now|for today|thanks?|thank you))*$")
# An emoji acknowledgement alone (repeated or skin-toned: "👍🏽👍"): 🙏 😊 🙂 ☺ thank, 👍 👌 ✅ 🆗 say ok.
# Looked up, it was all [UNK] to the encoder and got an unrelated answer.
_EMOJI_TALK = {"thanks": frozenset("\U0001f64f\U0001f60a\U0001f642\u263a"),
               "ok": frozenset("\U0001f44d\U0001f44c\u2705\U0001f197")}
_EMOJI_MODIFIERS = re.compile(r"[\s\ufe0f\U0001f3fb-\U0001f3ff]+")  # spaces, emoji style, skin tones
# "That didn't help" after an answer: the customer rejects it. Read as a new question it found
# whatever entry mentions "help"; it is an unsure turn on the same topic, offering the other entries.
# QA: "that doesnt help", "didn't help", "wrong" and "useless" were looked up as questions. Only the whole
# (short) message: "wrong amount debited from my account" is a question.
_IS = r"(?:that's|thats|that is|this is|it's|its|it is|that was|this was|it was)"
_REJECTED = re.compile(r"^(?:no|nope|sorry|hmm|but)?\s*(?:"
                       r"(?:(?:that|this|it)(?: answer)? )?(?:didn't|didnt|did not|doesn't|doesnt|does not|won't|wont|"
                       r"will not) (?:help|work|answer (?:my|the) question)(?: (?:at all|me|much))*"
                       rf"|{_IS} not (?:helpful|useful|it|right|correct|what i (?:asked|meant|wanted|need|needed|"
                       r"was asking|was looking for))"
                       r"|(?:that|this|it) (?:wasn't|wasnt|isn't|isnt) (?:helpful|useful|right|correct)"
                       r"|not (?:helpful|useful|what i (?:asked|meant|wanted|need|needed|was asking|was looking for))"
                       r"(?: at all)?"
                       rf"|(?:{_IS} )?(?:the )?wrong(?: answer)?"
                       rf"|(?:(?:{_IS}|you're|you are) )?(?:(?:so|totally|completely|very) )?"
                       r"(?:useless|unhelpful|incorrect)"
                       r"|(?:you )?(?:didn't|did not|don't|do not) (?:understand|answer) (?:me|my question)"
                       r")$")
REJECTED_ANSWER = "Sorry that didn't help. Did you mean one of these?"
# Taking back a hand-off before an agent answered (QA: after a low-confidence hand-off, "cancel" or "never mind"
# met silence; the customer could only wait for an agent they no longer needed). The whole message only.
_PERSON = r"(?:an? |the )?(?:agent|human|person|representative|rep|operator|someone|anyone|somebody)"
_CANCEL_HANDOFF = re.compile(
    r"^(?:(?:ok|okay|no|oh|actually|sorry|please|hmm) )*(?:"
    r"cancel(?: (?:that|it|this|(?:the|my) request|the hand ?off))?"  # not "cancel the transfer": a payment
    r"|never ?mind|nvm|forget (?:it|about it)|(?:don't|dont) bother"
    rf"|(?:i )?(?:don't|dont|do not) (?:need|want) {_PERSON}|no need(?: for {_PERSON})?|no {_PERSON}"
    r"|(?:(?:go|take me|put me|switch|get me) )?back to (?:the )?(?:bot|assistant|chatbot)"
    r"|(?:i'll|ill|i will|let me) (?:use|try|talk to|chat with|ask) (?:the )?(?:bot|assistant|chatbot)"
    r")(?: (?:anymore|any more|after all|then|now|thanks?|thank you|please|again|instead))*$")
HANDOFF_CANCELLED_ANSWER = "OK, I've cancelled your request for a person. What else can I help you with?"
# the same words once an agent has written: the agent keeps the chat, the turn stays silent, but the customer
# is told so (QA: "cancel" met nothing at all, as if the chat were broken)
HANDOFF_KEPT_ANSWER = ("A member of our team has this chat and will answer you here. "
                       "If you don't need them any more, just tell them.")
SMALL_TALK_ANSWERS = {
    "greeting": "Hello! How can I help you today? Ask me about your accounts, cards, loans or payments.",
    "thanks": "You're welcome! Is there anything else I can help you with?",
    "bye": "Goodbye, and thank you for chatting with us.",
    "ok": "Is there anything else I can help you with?",
    "done": "Alright. Thank you for chatting with us, and if anything else comes up, just ask.",
}

HANDOFF_ANSWER = ("I'm handing this conversation to a member of our team; "
                  "an agent will reply here shortly.")
SILENT_ANSWER = "An agent has this conversation and will reply here."  # said once per handoff
CLARIFY_ANSWER = "I'm not sure I understood. Did you mean one of these?"
NO_MATCH_ANSWER = ("Sorry, I couldn't find anything about that. Could you put it another way? "
                   "I can help with questions about your accounts, cards, loans and payments, "
                   "or you can ask to speak to a person.")


@dataclass
class Policy:
    """Thresholds of the unsure → clarify → handoff path."""

    answer_threshold: float = 0.5  # calibrated confidence needed to answer outright
    ambiguity_margin: float = 0.02  # top two entries closer than this → ask which
    max_unsure: int = 2  # consecutive unsure turns before a handoff
    suggestions: int = 3


MAX_TURNS = 10  # the turns a conversation's state keeps (follow-ups and "didn't help" read the last question)


@dataclass
class State:
    """What Redis remembers of a conversation between turns."""

    turns: list[dict[str, str]] = field(default_factory=list)
    unsure: int = 0
    handoff: bool = False
    ticket_id: int | None = None
    notified: bool = False  # the "an agent has this conversation" notice was given this handoff
    # the entry last answered, kept through unsure turns: a follow-up or "that didn't help" later must
    # not give it again (cleared by an unsure turn, "didn't help" -> "what about loans?" repeated it)
    answered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"turns": self.turns[-MAX_TURNS:], "unsure": self.unsure, "handoff": self.handoff,
                "ticket_id": self.ticket_id, "notified": self.notified, "answered": self.answered}

    def hand_back(self) -> None:
        """The hand-off is over (an agent released it, or the customer took it back): the bot answers."""
        self.handoff, self.unsure, self.ticket_id, self.notified = False, 0, None, False

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> State:
        data = data or {}
        answered = data.get("answered")
        return cls(list(data.get("turns", [])), int(data.get("unsure", 0)), bool(data.get("handoff")),
                   data.get("ticket_id"), bool(data.get("notified")), None if answered is None else str(answered))


@dataclass
class Decision:
    kind: str  # answer | clarify | handoff | silent
    answer: str
    confidence: float
    hits: list[Hit]


def wants_human(text: str) -> bool:
    """Whether some clause of ``text`` asks for a person, not saying it does not want one."""
    return any(_asks_for_person(clause) for clause in _CLAUSES.split(text.replace("\u2019", "'")))


def _asks_for_person(clause: str) -> bool:
    words = " ".join(_MARKS.sub(" ", clause).split())  # "talk to a *human* agent" reads as its words
    match = _HUMAN.search(words)
    return match is not None and not _NEGATED.search(words[:match.start()]) and not _ASKS_IF_NEEDED.search(words)


def small_talk(text: str) -> str | None:
    """``greeting``, ``thanks``, ``bye``, ``done`` ("no, that's all") or ``ok`` when the whole (short)
    message is only that."""
    emoji = set(_EMOJI_MODIFIERS.sub("", text))
    for kind, marks in _EMOJI_TALK.items():
        if emoji and emoji <= marks:
            return kind
    words = " ".join(_MARKS.sub(" ", text.casefold().replace("\u2019", "'")).split())
    if not words or len(words.split()) > 6:
        return None
    # a goodbye first: "ok thanks bye" ends the chat, it does not invite another question
    for kind, pattern in (("greeting", _GREETING), ("bye", _BYE), ("done", _DONE), ("thanks", _THANKS), ("ok", _OK)):
        if pattern.match(words):
            return kind
    return None


def cancels_handoff(text: str) -> bool:
    """The whole message takes back a hand-off ("cancel", "never mind", "I don't need an agent")."""
    words = " ".join(_MARKS.sub(" ", text.casefold().replace("\u2019", "'")).split())
    return len(words.split()) <= 10 and bool(_CANCEL_HANDOFF.match(words))


def is_follow_up(text: str) -> bool:
    return bool(_FOLLOW_UP.match(text)) and len(text.split()) <= 8


def rejects_answer(text: str) -> bool:
    """The whole message says the last answer did not help ("that didn't help", "not what I asked")."""
    words = " ".join(_MARKS.sub(" ", text.casefold().replace("\u2019", "'")).split())
    return len(words.split()) <= 10 and bool(_REJECTED.match(words))


def topic_question(state: State) -> str | None:
    """The last user turn that asked something: not small talk, a follow-up, a rejection, a request
    for a person or its taking back (QA: after a cancelled handoff, "that didn't help" offered the
    entries nearest "cancel" instead of the earlier answer's alternatives)."""
    return next((t["text"] for t in reversed(state.turns) if t.get("role") == "user"
                 and not small_talk(text := t.get("text", "")) and not is_follow_up(text)
                 and not rejects_answer(text) and not wants_human(text) and not cancels_handoff(text)), None)


def follow_up_context(message: str, state: State) -> str | None:
    """The question that set the topic when ``message`` is a short follow-up ("and for credit cards?").

    In "interest on savings?" → "and for credit cards?" → "what about loans?", the third reads with
    the first (read with the second, "and for credit cards?", it had lost the topic).
    """
    return topic_question(state) if is_follow_up(message) else None


def same_entry_text(a: Hit, b: Hit, answers: dict[str, str]) -> bool:
    """Two entries a customer could not tell apart and would not need to: copies with the same answer.

    FAQs often hold one entry twice (a copy, or the same answer under another wording of the
    question): asking "which of these?" only loops, the best one is answered. The same question
    with different answers is another matter: FAQs hold "Where do I get this card?" once per
    card, and answering the top one confidently gives most customers another card's answer.
    Those are told apart by :func:`suggestion_labels`. Without both answers, the question decides.
    """
    ans_a, ans_b = answers.get(a.id), answers.get(b.id)
    if ans_a is None or ans_b is None:
        return match_key(a.question) == match_key(b.question)
    squashed = {ans_a: match_key(ans_a).replace(" ", ""), ans_b: match_key(ans_b).replace(" ", "")}
    if squashed[ans_a] == squashed[ans_b]:
        return True
    # a near copy ("PhoneBanking" / "Phone Banking", "the branch" / "the nearest branch") is still
    # a copy; answers that differ by a name ("Platinum" / "ISIC" card), a figure or a "not" are not
    words_a, words_b = match_key(ans_a).split(), match_key(ans_b).split()
    if min(len(words_a), len(words_b)) < NEAR_COPY_WORDS:
        return False  # too short to tell a rewording from another answer
    if SequenceMatcher(None, words_a, words_b).quick_ratio() < NEAR_COPY:
        return False
    if _NEGATIONS & (set(words_a) ^ set(words_b)):
        return False
    return not any(name not in squashed[other]  # "PhoneBanking" is in "Phone Banking"
                   for mine, other in ((ans_a, ans_b), (ans_b, ans_a)) for name in _names(mine))


# Answers of at least NEAR_COPY_WORDS words sharing this share of them (difflib's quick ratio), naming
# nothing and denying nothing the other does not, are copies (bank FAQ: a word or two apart).
NEAR_COPY, NEAR_COPY_WORDS = 0.85, 8
_NEGATIONS = frozenset({"not", "no", "never", "cannot", "can't", "cant", "don't", "dont", "won't", "isn't", "without"})
# not a sentence's first word, also where the FAQ left out the space ("Debit Card.New card", "purchaser.The":
# bank FAQ QA saw buttons read "... stolen — New The")
_NAME = re.compile(r"(?<![.!?:]\s)(?<![.!?:])(?<!^)\b[A-Z][\w-]*")
_FIGURE = re.compile(r"\b\d(?:[\d,.]*\d)?\b")  # "60 days" and "180 days" in advance are two rules


def _names(text: str) -> set[str]:
    """Capitalised words not opening a sentence (product and plan names, as FAQs write them) and figures."""
    text = text.strip()
    return {m.group(0).casefold() for m in _NAME.finditer(text)} | set(_FIGURE.findall(text))


def is_ambiguous(hits: list[Hit], answers: dict[str, str], margin: float) -> bool:
    """A distinct entry scores within ``margin`` of the top one (duplicates of it do not count)."""
    if not hits:
        return False
    top = hits[0]
    return any(top.score - h.score < margin and not same_entry_text(top, h, answers) for h in hits[1:])


def distinct_suggestions(hits: list[Hit], answers: dict[str, str], n: int) -> list[Hit]:
    """Up to ``n`` hits, best first, leaving out any a customer could not tell from an earlier one."""
    out: list[Hit] = []
    for h in hits:
        if not any(same_entry_text(o, h, answers) for o in out):
            out.append(h)
        if len(out) == n:
            break
    return out


_WORD = re.compile(r"\w+")


def _distinct_starts(answers: list[str], width: int = 60) -> list[str]:
    """A short start of each answer that tells it from the others: past the words they share."""
    words = [a.split() for a in answers]
    keys = [[" ".join(_WORD.findall(w.casefold())) for w in ws] for ws in words]
    out = []
    for i, ws in enumerate(words):
        shared = 0
        for j, other in enumerate(keys):
            if j != i:
                n = 0
                while n < min(len(keys[i]), len(other)) and keys[i][n] == other[n]:
                    n += 1
                shared = max(shared, n)
        start = min(shared, max(len(ws) - 1, 0))
        snippet = ""
        for w in ws[start:]:
            if snippet and len(snippet) + 1 + len(w) > width:
                snippet += "\u2026"
                break
            snippet = f"{snippet} {w}" if snippet else w[:width]
        out.append(("\u2026" if start else "") + snippet)
    return out


def suggestion_labels(hits: list[Hit], answers: dict[str, str],
                      categories: dict[str, str | None] | None = None) -> list[str]:
    """What each hit is shown as: its question, told apart from the others with the same question.

    Entries sharing a question (one per card, per plan) are labelled with their category when
    each has a different one, else with a distinguishing start of their answer (~60 chars).
    """
    categories = categories or {}
    labels = [h.question for h in hits]
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hits):
        groups.setdefault(match_key(h.question), []).append(i)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        cats = [str(categories.get(hits[i].id) or "").strip() for i in idx]
        if all(cats) and len({c.casefold() for c in cats}) == len(cats):
            for i, cat in zip(idx, cats, strict=True):
                labels[i] = f"{hits[i].question} ({cat})"
            continue
        texts = [answers.get(hits[i].id) or "" for i in idx]
        names = _own_names(texts)
        starts = names if all(names) else _distinct_starts(texts)
        for i, start in zip(idx, starts, strict=True):
            labels[i] = f"{hits[i].question} \u2014 {start}" if start else hits[i].question
    return labels


def _own_names(texts: list[str], most: int = 3) -> list[str]:
    """Per answer, the names only it mentions (its card, its plan), as it writes them: the best
    label for "Where do I get this card" once per card; empty where it has none of its own."""
    found = [{m.group(0).casefold(): m.group(0) for m in _NAME.finditer(t.strip())} for t in texts]
    out = []
    for i, mine in enumerate(found):
        others = set().union(*(f for j, f in enumerate(found) if j != i)) if len(found) > 1 else set()
        own = [v for k, v in mine.items() if k not in others]
        out.append(" ".join(own[:most]))
    return out


def silent(state: State) -> Decision:
    """While an agent has the conversation: say so once, then stay quiet (empty answer)."""
    if state.notified:
        return Decision("silent", "", 0.0, [])
    state.notified = True
    return Decision("silent", SILENT_ANSWER, 0.0, [])


def handoff_kept(state: State) -> Decision:
    """The customer asked to take back a hand-off an agent has already answered: the agent keeps it (the
    turn is silent, ``handoff`` stays true), and the customer is told so instead of meeting nothing."""
    state.notified = True
    return Decision("silent", HANDOFF_KEPT_ANSWER, 0.0, [])


def handed_back(state: State) -> Decision:
    """The customer took the hand-off back (its ticket is closed): the bot answers again, counts reset."""
    state.hand_back()
    return Decision("answer", HANDOFF_CANCELLED_ANSWER, 1.0, [])


def _last_bot_text(state: State) -> str | None:
    return next((t["text"] for t in reversed(state.turns) if t.get("role") == "bot"), None)


def decide(message: str, hits: list[Hit], confidence: float, answers: dict[str, str],
           state: State, policy: Policy, follow_up: bool = False, rejected: bool = False,
           unrivalled: bool = False, no_match: bool = False) -> Decision:
    """Choose this turn's reply and update ``state`` in place.

    ``follow_up``: the message was read with the previous question ("and for credit cards?");
    its best entry being the one just answered means the new words changed nothing the
    retrieval could see, so the same answer is not given again: the others are offered.
    ``rejected``: the message said the last answer did not help and ``hits`` are the topic
    question's: an unsure turn offering them, the rejected entry left out.
    ``unrivalled``: the message is one of ``hits[0]``'s own phrasings (:meth:`KnowledgeBase.exact_entry`)
    and the encoder could not read it, so the other hits' scores say nothing and make no ambiguity
    (a readable one keeps the rule: another product's near-copy question still asks which).
    ``no_match``: no entry scores near the message (:meth:`KnowledgeBase.rank`): an unsure turn
    asking to rephrase, with no suggestions (three unrelated entries read as a broken bot).
    """
    if state.handoff:
        return silent(state)
    if wants_human(message):
        state.handoff, state.notified, state.answered = True, False, None
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    chat = small_talk(message)
    if chat == "done" and _last_bot_text(state) in (CLARIFY_ANSWER, REJECTED_ANSWER):
        # "no" to "Did you mean one of these?" says none of them fits, it does not end the chat (regression
        # QA: it said goodbye, and the next question's unsure turn went straight to a handoff): an unsure turn
        state.unsure += 1
        if state.unsure > policy.max_unsure:
            state.handoff, state.notified = True, False
            return Decision("handoff", HANDOFF_ANSWER, 0.0, [])
        return Decision("clarify", NO_MATCH_ANSWER, 0.0, [])
    if chat is not None:  # neither an unsure turn nor a resolved one: the counts stay as they are
        return Decision("answer", SMALL_TALK_ANSWERS[chat], 1.0, [])
    repeated = rejected or (follow_up and bool(hits) and state.answered is not None and hits[0].id == state.answered)
    if repeated:
        hits = [h for h in hits if h.id != state.answered]
    ambiguous = not unrivalled and is_ambiguous(hits, answers, policy.ambiguity_margin)
    if hits and not repeated and confidence >= policy.answer_threshold and not ambiguous:
        state.unsure, state.answered = 0, hits[0].id
        return Decision("answer", answers[hits[0].id], confidence, hits[: policy.suggestions])
    state.unsure += 1
    if state.unsure > policy.max_unsure or not hits:
        state.handoff, state.notified = True, False
        return Decision("handoff", HANDOFF_ANSWER, confidence, hits[: policy.suggestions])
    if no_match and not rejected:
        return Decision("clarify", NO_MATCH_ANSWER, confidence, [])
    return Decision("clarify", REJECTED_ANSWER if rejected else CLARIFY_ANSWER, confidence,
                    distinct_suggestions(hits, answers, policy.suggestions))


def chosen(entry_id: str, question: str, answer: str, state: State) -> Decision:
    """The customer picked a suggested entry: answer it outright, a resolved turn (not unsure)."""
    state.unsure, state.answered = 0, entry_id
    return Decision("answer", answer, 1.0, [Hit(entry_id, 1.0, question)])
