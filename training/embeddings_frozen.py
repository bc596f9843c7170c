"""Fine-tune only the top layers of a sentence encoder, the bottom ones' output cached once.

The frozen embeddings and bottom layers give each text the same token states on every
pass, so they run once per text (no grad, in eval mode) instead of forward and backward
on every step; each step then costs only the trainable top layers. On a CPU this buys
more passes over the data in the same wall-clock budget.
"""

from __future__ import annotations

import copy
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
        import torch

        states = [self.states[t] for t in texts]
        width = max(len(s) for s in states)
        hidden = torch.zeros(len(states), width, states[0].shape[-1], device=self.device)
        mask = torch.zeros(len(states), width, dtype=torch.long, device=self.device)
        for i, s in enumerate(states):
            hidden[i, :len(s)] = s.float()
            mask[i, :len(s)] = 1
        out = self.top(inputs_embeds=hidden, attention_mask=mask)
        features: dict[str, Any] = {"token_embeddings": out.last_hidden_state, "attention_mask": mask}
        for module in list(self.model)[1:]:  # pooling, normalisation, ... as the model defines them
            features = module(features)
        return features["sentence_embedding"]
