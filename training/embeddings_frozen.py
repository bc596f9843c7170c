"""Fine-tune only the top layers of a sentence encoder, the bottom ones' output cached once.

The frozen embeddings and bottom layers give each text the same token states on every
pass, so they run once per text (no grad, in eval mode) instead of forward and backward
on every step; each step then costs only the trainable top layers. On a CPU this buys
more passes over the data in the same wall-clock budget.
"""

from __future__ import annotations

import copy
import random
import sys
from typing import Any

CACHE_BYTES = 2 << 30  # fp16 token states of every training text; past this, train the whole encoder


def freezable(model: Any, wanted: int, texts: list[str], cache_bytes: int = CACHE_BYTES) -> int:
    """How many of ``wanted`` bottom layers to freeze: all but one at most, none for an encoder that
    is not BERT-like or for texts whose cached states would not fit in ``cache_bytes``."""
    if not wanted:
        return 0
    layers = getattr(getattr(model[0].auto_model, "encoder", None), "layer", None)
    frozen = min(wanted, len(layers) - 1) if layers is not None else 0
    if frozen:
        lengths = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
        need = sum(map(len, lengths)) * model[0].auto_model.config.hidden_size * 2
        if need > cache_bytes:
            print(f"freeze_layers {wanted}: caching {len(texts)} texts needs {need / 2**30:.1f} GiB, "
                  f"training the whole encoder instead", file=sys.stderr)
            return 0
    if frozen < wanted:
        print(f"freeze_layers {wanted}: this encoder allows {frozen}, freezing {frozen}", file=sys.stderr)
    return frozen


class _Passthrough:
    """Stands in for the embeddings module: the cached states are the input."""

    def __call__(self, inputs_embeds: Any = None, **_: Any) -> Any:
        return inputs_embeds


class TopLayers:
    """Embeds texts through the unfrozen top of ``model`` from cached bottom-layer states."""

    def __init__(self, model: Any, frozen: int, texts: list[str], device: str, batch_size: int = 128):
        import torch

        self.model, self.device = model, device
        bert = model[0].auto_model
        layers = bert.encoder.layer
        if not 0 < frozen < len(layers):
            from shared.errors import BadInput

            raise BadInput(f"freeze_layers must be between 1 and {len(layers) - 1} for this encoder, got {frozen}")
        for module in (bert.embeddings, *layers[:frozen]):
            module.requires_grad_(False)
        # a view of the model that starts at layer ``frozen`` and shares its parameters
        self.top = copy.copy(bert)
        self.top._modules = {k: v for k, v in bert._modules.items() if k != "embeddings"}
        encoder = copy.copy(bert.encoder)
        encoder._modules = {**bert.encoder._modules, "layer": torch.nn.ModuleList(layers[frozen:])}
        self.top._modules["encoder"] = encoder
        self.top._modules["pooler"] = None
        object.__setattr__(self.top, "embeddings", _Passthrough())
        # cache: token states after the frozen layers, fp16 to halve the memory
        self.states: dict[str, Any] = {}
        was_training = bert.training
        bert.eval()
        ordered = sorted(texts, key=len)
        with torch.inference_mode():
            for at in range(0, len(ordered), batch_size):
                chunk = ordered[at:at + batch_size]
                feats = model.preprocess(chunk)
                feats = {k: v.to(device) for k, v in feats.items() if hasattr(v, "to")}
                out = bert(**{k: feats[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in feats},
                           output_hidden_states=True)
                hidden = out.hidden_states[frozen]
                lengths = feats["attention_mask"].sum(dim=1).tolist()
                for text, h, n in zip(chunk, hidden, lengths, strict=True):
                    self.states[text] = h[:n].to(torch.float16).clone()
        bert.train(was_training)

    def embed(self, texts: list[str]) -> Any:
        """Sentence embeddings with grad through the top layers and the model's own pooling."""
        return self.encode(*self.states_of(texts))

    def states_of(self, texts: list[str]) -> tuple[Any, Any]:
        """The cached token states of ``texts``, padded: ``(hidden, attention mask)``."""
        import torch

        states = [self.states[t] for t in texts]
        width = max(len(s) for s in states)
        hidden = torch.zeros(len(states), width, states[0].shape[-1], device=self.device)
        mask = torch.zeros(len(states), width, dtype=torch.long, device=self.device)
        for i, s in enumerate(states):
            hidden[i, :len(s)] = s.float()
            mask[i, :len(s)] = 1
        return hidden, mask

    def encode(self, hidden: Any, mask: Any) -> Any:
        """Sentence embeddings of token states at the top layers' input (FGM pushes these)."""
        out = self.top(inputs_embeds=hidden, attention_mask=mask)
        features: dict[str, Any] = {"token_embeddings": out.last_hidden_state, "attention_mask": mask}
        for module in list(self.model)[1:]:  # pooling, normalisation, ... as the model defines them
            features = module(features)
        return features["sentence_embedding"]


def fgm_loss(top: TopLayers, loss_fn: Any, columns: list[list[str]], eps: float, device: str, amp: bool) -> Any:
    """The batch's contrastive loss, backpropagated twice: as is, then with each text's cached
    token states moved ``eps`` along its own gradient (FGM, Miyato et al., 2017, at the top
    layers' input rather than the word embeddings, which are frozen here). Returns the clean loss.

    The push is per text (its gradient's norm over its tokens), so a long question is not moved
    less per token than a short one; padding is not moved.
    """
    import torch

    states = [top.states_of(c) for c in columns]
    for hidden, _ in states:
        hidden.requires_grad_(True)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        loss = loss_fn.compute_loss_from_embeddings([top.encode(h, m) for h, m in states], torch.empty(0))
    loss.backward()  # the weights' gradients and, the states being leaves, the states' own
    pushed = [(push_states(hidden, mask, hidden.grad, eps), mask) for hidden, mask in states]
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
        adversarial = loss_fn.compute_loss_from_embeddings([top.encode(h, m) for h, m in pushed], torch.empty(0))
    adversarial.backward()
    return loss


def push_states(hidden: Any, mask: Any, grad: Any, eps: float) -> Any:
    """``hidden`` moved ``eps`` along ``grad``, normalised per text over its tokens; padding and
    texts without gradient stay put."""
    import torch

    grad = grad * mask.unsqueeze(-1)
    norm = torch.linalg.vector_norm(grad, dim=(1, 2), keepdim=True)
    step = torch.where(norm > 0, eps * grad / norm.clamp_min(1e-12), torch.zeros_like(grad))
    return hidden.detach() + step


class FgmShare:
    """Which steps get FGM's second pass: every one when the time budget affords it, else the
    share it does, so a slow CPU keeps the plain recipe's passes and a fast one gets FGM throughout.

    Steps ``1..pace-1`` run plain and ``pace+1..2*pace-1`` with FGM (the first of each is not
    timed: allocation); at ``2*pace`` the two paces give the room the budget has beyond the
    plain remainder, and each later step takes FGM with that probability (its own seeded draw,
    so the batches are those of a plain run).
    """

    def __init__(self, budget_s: float, seed: int, pace: int = 10) -> None:
        self.budget_s, self.pace = budget_s, pace
        self.times: dict[bool, list[float]] = {False: [], True: []}
        self.share: float | None = None
        self.steps = 0
        self._draw = random.Random(seed + 1)

    def wants(self, step: int) -> bool:
        """Whether optimiser step ``step`` (0-based) runs FGM."""
        if self.share is None:
            return step >= self.pace
        return self.share >= 1.0 or self._draw.random() < self.share

    def record(self, step: int, used: bool, seconds: float) -> None:
        self.steps += used
        if self.share is None and step % self.pace:  # the first step of each phase is not timed
            self.times[used].append(seconds)

    def fit(self, step: int, remaining: int, elapsed_s: float, reserve_s: float) -> str | None:
        """At step ``2*pace``: fix the share from the two paces; returns the line to log."""
        if self.share is not None or step < 2 * self.pace:
            return None
        plain = sum(self.times[False]) / max(1, len(self.times[False]))
        fgm = sum(self.times[True]) / max(1, len(self.times[True]))
        room = self.budget_s - reserve_s - elapsed_s - remaining * plain
        extra = remaining * max(fgm - plain, 1e-9)
        self.share = min(1.0, max(0.0, room / extra))
        return (f"adversarial_eps: FGM on {self.share:.0%} of the remaining {remaining} steps "
                f"({fgm:.2f}s/step against {plain:.2f}s plain; the time budget decides)")
