"""HTTP views: parse, validate, one call into :class:`~services.recommendations.serving.RecsService`."""

from __future__ import annotations

import time
from typing import Annotated, Any

from flask import Blueprint, current_app, g, jsonify
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StringConstraints,
    Tag,
    field_validator,
)

from data_connectors.interactions import Interaction, parse_timestamp
from data_connectors.interactions.records import MAX_RATING, id_text, no_timestamp, rating_number
from services.recommendations.serving import MAX_K, RecsService
from shared.auth import audit, require_role
from shared.db import get_db
from shared.errors import BadInput
from shared.text import is_blank
from shared.url_path import require_utf8_path
from shared.web import documented, int_arg, int_query, json_body, query_params

bp = Blueprint("recommendations", __name__)
MAX_ID_CHARS = 200  # an id's length in a post, a file row and the tables' columns
K = int_query("items to return", 1, MAX_K, 10)  # read by k_arg (ASCII digits only)


def _visible(value: str) -> str:
    if is_blank(value):  # "\u200b", "\ufeff" or "\u2060" alone was stored as a user (or item)
        raise ValueError("must hold a visible character")
    if len(value) > MAX_ID_CHARS:  # StringConstraints said "at most 200 items" ("at least 1 item" of "")
        raise ValueError(f"must be at most {MAX_ID_CHARS} characters, got {len(value)}")
    return value


def path_id(raw: str, name: str, *, stored: bool = False) -> str:
    """An id in the URL read as a posted one is stored: " qq " is the user "qq" (a GET for it got the
    popular items, ones that user had among them); a blank one is a 400, as it is in a post. One to be
    ``stored`` (retired) is at most ``MAX_ID_CHARS`` long, as in a post: PostgreSQL refused a longer one
    with a 500 (SQLite kept it)."""
    value = raw.strip()
    if is_blank(value):
        raise BadInput(f"{name} must hold a visible character")
    if stored and len(value) > MAX_ID_CHARS:
        raise BadInput(f"{name} is at most {MAX_ID_CHARS} characters, got {len(value)}")
    return value


# a JSON number is the id its integer writes, as in a file: 1.0 was another item than 1
Id = Annotated[str, BeforeValidator(id_text),
               StringConstraints(strip_whitespace=True), AfterValidator(_visible),
               Field(json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS})]  # checked by _visible


class InteractionIn(BaseModel):
    """One event: a rating (explicit) or a view/click (implicit)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    # stripped before the length check: "  " was stored as the user (or item) ""
    user_id: Id
    item_id: Id
    # the bound and the checks a file's rows meet too (``true`` was a rating of 1)
    rating: Annotated[float, BeforeValidator(rating_number)] = Field(1.0, ge=-MAX_RATING, le=MAX_RATING)
    event: str = Field("view", max_length=32)
    timestamp: int | float | str | None = Field(None, description="Unix seconds or ISO-8601; default "
                                                "(also when empty) now")

    @field_validator("timestamp", mode="before")
    @classmethod
    def _ts(cls, value: Any) -> Any:
        """Before the union's coercion, which made ``true`` a 1 the boolean check never saw. An empty
        string is no timestamp (now), as an empty cell is in a file: ``""`` was stored at 1970."""
        if no_timestamp(value):
            return None
        try:
            parse_timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"timestamp must be Unix seconds or ISO-8601 ({exc})") from None
        return value

    def to_interaction(self) -> Interaction:
        """Without a timestamp the event happened now; 0 is 1970, not "now" (``is None``, not falsy)."""
        ts = int(time.time()) if self.timestamp is None else parse_timestamp(self.timestamp)
        return Interaction(self.user_id, self.item_id, self.rating, ts, self.event)


def _one_or_many(value: Any) -> str:
    return "interactions" if isinstance(value, list) else "interaction"


# Tagged by the body's shape, so a bad object is told what it lacks, not also that it is no list.
OneOrMany = Annotated[Annotated[InteractionIn, Tag("interaction")]
                      | Annotated[list[InteractionIn], Tag("interactions")], Discriminator(_one_or_many)]


class InteractionsIn(RootModel[OneOrMany]):
    """One interaction or a list of them (at most 10,000)."""

    @field_validator("root")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= 10_000:
            raise ValueError("send between 1 and 10000 interactions")
        return value


def service() -> RecsService:
    return current_app.extensions["recs"]


def k_arg() -> int:
    """``k`` as :data:`K` documents it (ASCII digits only, ``shared.web.int_arg``), refused as ``bad_k``."""
    return int_arg("k", K.default, 1, MAX_K, code="bad_k")


bp.before_request(require_utf8_path)  # "%FF" was read as U+FFFD and answered for that user


@bp.post("/v1/interactions")
@documented(status=201, needs=("database",))
@require_role("feed", only_if="feed_key_required")
@json_body(InteractionsIn)
def post_interactions(body: InteractionsIn) -> Any:
    """Store interactions; they change the users' next recommendations at once (fold-in)."""
    rows = body.root if isinstance(body.root, list) else [body.root]
    result = service().add_interactions([r.to_interaction() for r in rows])
    return jsonify(result), 201


# path: ids may hold slashes (an article URL as item id), sent as %2F; merge_slashes=False keeps "//"
@bp.get("/v1/users/<path:user_id>/recommendations", merge_slashes=False)
@documented(needs=("model", "database"))  # the model, and the retired items it leaves out
@query_params(k=K)
def user_recommendations(user_id: str) -> Any:
    """Top-k unseen items for a user (unknown users get popular items)."""
    return jsonify(service().recommend(path_id(user_id, "user id"), k_arg()))


@bp.delete("/v1/items/<path:item_id>", merge_slashes=False)
@documented(needs=("database",))  # the retirement list, and the audit row
@require_role("ops")
def retire_item(item_id: str) -> Any:
    """Retire an item (a deleted FAQ entry, a superseded article): never recommended again, left out of refits."""
    item_id = path_id(item_id, "item id", stored=True)
    result = service().retire(item_id, g.actor)
    audit(get_db(), g.actor, "recs.retire_item", item_id, "ok")
    return jsonify(result)


@bp.post("/v1/items/<path:item_id>/restore", merge_slashes=False)
@documented(needs=("database",))  # the retirement list, and the audit row
@require_role("ops")
def restore_item(item_id: str) -> Any:
    """Undo a retirement: the item may be recommended again and refits keep its events."""
    item_id = path_id(item_id, "item id", stored=True)
    result = service().restore(item_id)
    audit(get_db(), g.actor, "recs.restore_item", item_id, "ok" if result["restored"] else "not retired")
    return jsonify(result)


@bp.get("/v1/items/<path:item_id>/similar", merge_slashes=False)
@documented(needs=("model", "database"))
@query_params(k=K)
def similar_items(item_id: str) -> Any:
    """Items most related to an item (unknown items get popular items)."""
    return jsonify(service().similar(path_id(item_id, "item id"), k_arg()))
