"""Domain-adaptive masked-language-model steps: continue the encoder's pre-training on
in-domain text before fine-tuning it (Gururangan et al. 2020, "Don't Stop Pretraining").

The bundled MiniLM-L6 ships without its MLM head, so the head's transform starts random:
a first phase trains the head alone (the encoder frozen, so a random head cannot push
nonsense gradients into it), then everything trains at a low LR. The result is a plain
BERT encoder directory that any ``base_model`` option accepts.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from shared.model_loading import model_loading

log = logging.getLogger(__name__)


def adapt_encoder(texts: list[str], base: str | Path, output: str | Path, *, epochs: float = 3.0,
                  head_epochs: float = 1.0, batch_size: int = 32, lr: float = 5e-5, head_lr: float = 1e-3,
                  mask_prob: float = 0.15, max_length: int = 128, seed: int = 0, device: str = "cpu",
                  amp_dtype: Any = None, time_budget_s: float | None = None) -> dict[str, Any]:
    """MLM-train ``base`` on ``texts`` and save the encoder (no MLM head) to ``output``.

    Returns a summary (steps, first/last loss, seconds). ``time_budget_s`` ends the run
    early at a step boundary; the schedule is planned for the full ``epochs``.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling

    started = time.monotonic()
    texts = [t for t in dict.fromkeys(t.strip() for t in texts) if t]  # duplicates would be memorised
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    with model_loading():
        model = AutoModelForMaskedLM.from_pretrained(base, use_safetensors=True).to(device)
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mask_prob, return_tensors="pt")
    per_epoch = math.ceil(len(encoded) / batch_size)
    head_steps, body_steps = round(per_epoch * head_epochs), round(per_epoch * epochs)
    head = [p for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix + ".")]
    summary: dict[str, Any] = {"texts": len(texts), "head_steps": head_steps, "steps": body_steps}

    def run(steps: int, params: list[Any], peak: float, phase: str) -> list[float]:
        optimizer = torch.optim.AdamW(params, lr=peak, weight_decay=0.01)
        warmup = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
        losses: list[float] = []
        order: list[int] = []
        model.train()
        for step in range(steps):
            if not order:
                order = list(range(len(encoded)))
                rng.shuffle(order)
            idx, order = order[:batch_size], order[batch_size:]
            batch = {k: v.to(device) for k, v in collator([{"input_ids": encoded[i]} for i in idx]).items()}
            with torch.autocast(device_type=device, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = _masked_loss(model, batch, torch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            sched.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if step % 50 == 0 or step == steps - 1:
                print(f"[mlm] {phase} step {step + 1}/{steps} loss {loss.item():.3f}", file=sys.stderr)
            if time_budget_s is not None and time.monotonic() - started > time_budget_s:
                break
        return losses

    for p in model.parameters():
        p.requires_grad_(False)
    for p in head:
        p.requires_grad_(True)
    head_losses = run(head_steps, head, head_lr, "head") if head_steps else []
    for p in model.parameters():
        p.requires_grad_(True)
    losses = run(body_steps, [p for p in model.parameters()], lr, "all")
    window = max(1, len(losses) // 10)
    summary.update(head_loss=_mean(head_losses[-window:]), first_loss=_mean(losses[:window]),
                   last_loss=_mean(losses[-window:]), seconds=round(time.monotonic() - started, 1))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    from transformers import AutoModel

    # the MLM model's encoder has no pooler; keep the base's so classifiers start from it
    with model_loading():
        encoder = AutoModel.from_pretrained(base, use_safetensors=True)
    missing = encoder.load_state_dict(model.base_model.state_dict(), strict=False).missing_keys
    assert all(k.startswith("pooler.") for k in missing), missing
    encoder.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return summary


def _masked_loss(model: Any, batch: dict[str, Any], torch: Any) -> Any:
    """MLM loss scored on the masked positions only: the vocabulary projection (30k wide)
    is most of an MLM step's cost, and 85% of its rows would be thrown away."""
    labels = batch.pop("labels")
    hidden = model.base_model(**batch).last_hidden_state
    picked = labels != -100
    head = model.cls if hasattr(model, "cls") else model.lm_head  # BERT family / RoBERTa family
    logits = head(hidden[picked])
    return torch.nn.functional.cross_entropy(logits.float(), labels[picked])


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
