"""HTTP views: parse, validate, one call into :class:`~services.recommendations.serving.RecsService`."""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, field_validator

from data_connectors.interactions import Interaction, parse_timestamp
from services.recommendations.serving import MAX_K, RecsService
from shared.errors import BadInput
from shared.web import documented, json_body, query_params

bp = Blueprint("recommendations", __name__)


class InteractionIn(BaseModel):
    """One event: a rating (explicit) or a view/click (implicit)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    user_id: str = Field(min_length=1, max_length=200)
    item_id: str = Field(min_length=1, max_length=200)
    rating: float = Field(1.0, ge=-1e6, le=1e6)
    event: str = Field("view", max_length=32)
    timestamp: int | float | str | None = Field(None, description="Unix seconds or ISO-8601; default now")

    @field_validator("timestamp")
    @classmethod
    def _ts(cls, value: Any) -> Any:
        if value is not None:
            try:
                parse_timestamp(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"timestamp must be Unix seconds or ISO-8601 ({exc})") from None
        return value

    def to_interaction(self) -> Interaction:
        return Interaction(self.user_id.strip(), self.item_id.strip(), self.rating,
                           parse_timestamp(self.timestamp), self.event)


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
    raw = request.args.get("k", "10")
    try:
        k = int(raw)
    except ValueError:
        raise BadInput(f"k must be an integer between 1 and {MAX_K}, got {raw!r}", code="bad_k") from None
    if not 1 <= k <= MAX_K:
        raise BadInput(f"k must be between 1 and {MAX_K}, got {k}", code="bad_k")
    return k


@bp.post("/v1/interactions")
@documented(status=201)
@json_body(InteractionsIn)
def post_interactions(body: InteractionsIn) -> Any:
    """Store interactions; they change the users' next recommendations at once (fold-in)."""
    rows = body.root if isinstance(body.root, list) else [body.root]
    result = service().add_interactions([r.to_interaction() for r in rows])
    return jsonify(result), 201


# path: ids may hold slashes (an article URL as item id), sent as %2F; merge_slashes=False keeps "//"
@bp.get("/v1/users/<path:user_id>/recommendations", merge_slashes=False)
@query_params(k=("integer", "items to return (default 10)"))
def user_recommendations(user_id: str) -> Any:
    """Top-k unseen items for a user (unknown users get popular items)."""
    return jsonify(service().recommend(user_id, k_arg()))


@bp.get("/v1/items/<path:item_id>/similar", merge_slashes=False)
@query_params(k=("integer", "items to return (default 10)"))
def similar_items(item_id: str) -> Any:
    """Items most related to an item (unknown items get popular items)."""
    return jsonify(service().similar(item_id, k_arg()))
