"""Content embeddings of item text (title, categories, abstract) from the sentence encoder.

Items nobody has interacted with yet have no collaborative signal; their text still
places them near the items a user has liked. Vectors are L2-normalised, so a user's score
is the cosine between an item and the recency-weighted mean of their latest items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from services.recommendations.recommenders.base import RecommenderBase, top_k
from services.recommendations.recommenders.data import History, Interactions, recency_weights
from shared.model_loading import model_loading


def encode_texts(texts: Sequence[str], model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Sentence embeddings (normalised) of ``texts`` with the bundled MiniLM by default."""
    from sentence_transformers import SentenceTransformer

    from shared.encoders import resolve_base_model

    with model_loading():
        model = SentenceTransformer(str(resolve_base_model(model_path)), device="cpu")
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                        show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)


class Content(RecommenderBase):
    """Cosine between item text embeddings and the user's recent items."""

    name = "content"

    def __init__(self, texts: Mapping[str, str] | None = None, model_path: str | None = None,
                 history: int = 10, half_life: float | None = 5.0,
                 vectors: np.ndarray | None = None):
        self.texts = dict(texts or {})
        self.model_path = model_path
        self.history, self.half_life = history, half_life
        self.vectors = vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)

    def fit(self, data: Interactions) -> Content:
        self.n_items = data.n_items
        if self.vectors.shape[0] == data.n_items:
            return self  # precomputed (tests, or a caller that encoded already)
        known = [(n, self.texts[i]) for n, i in enumerate(data.item_ids) if self.texts.get(i)]
        dim = 0
        vecs = encode_texts([t for _, t in known], self.model_path) if known else np.zeros((0, 0))
        dim = vecs.shape[1] if len(known) else 1
        self.vectors = np.zeros((data.n_items, dim), dtype=np.float32)
        if known:
            self.vectors[[n for n, _ in known]] = vecs
        return self

    def score(self, histories: Sequence[History]) -> np.ndarray:
        out = np.zeros((len(histories), self.n_items), dtype=np.float32)
        for row, hist in enumerate(histories):
            items = hist.items[-self.history:]
            if not len(items):
                continue
            w = recency_weights(History(items, items), self.half_life)
            profile = (self.vectors[items] * w[:, None]).sum(axis=0)
            out[row] = self.vectors @ profile / max(w.sum(), 1e-9)
        return out

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Text neighbours by cosine; items without text (zero vectors) relate to nothing."""
        self._check_item(item)
        has_text = np.abs(self.vectors).sum(axis=1) > 0
        sims = np.where(has_text, self.vectors @ self.vectors[item], -np.inf).astype(np.float32)
        sims[item] = -np.inf
        return top_k(sims, k)

    def get_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "history": self.history, "half_life": self.half_life}

    def get_arrays(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors}

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.vectors = arrays["vectors"]
