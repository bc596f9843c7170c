"""Adversarial training (FGM): the push, its exact undo, and where the trainer applies it."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import SentimentTrainConfig, train_sentiment

torch = pytest.importorskip("torch")


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.emb


def test_push_moves_only_the_batch_rows_by_eps_and_restores_them_exactly() -> None:
    from training.classification import _Fgm

    model = _Tiny()
    before = model.emb.weight.detach().clone()
    model.emb.weight.grad = torch.randn(10, 4)
    ids = torch.tensor([[3, 5, 5, 0]])
    fgm = _Fgm(model, eps=0.5)
    with fgm.perturbed(ids) as pushed:
        assert pushed
        delta = model.emb.weight.detach() - before
        rows = torch.tensor([0, 3, 5])
        grad = model.emb.weight.grad[rows]
        assert torch.allclose(delta[rows], 0.5 * grad / grad.norm(), atol=1e-6)  # uphill, eps long in all
        others = torch.ones(10, dtype=torch.bool)
        others[rows] = False
        assert torch.equal(delta[others], torch.zeros_like(delta[others]))  # tokens not in the batch stay
    assert torch.equal(model.emb.weight.detach(), before)  # bit for bit, not by a second subtraction


@pytest.mark.parametrize("grad", [None, "zero", "inf"])
def test_no_usable_gradient_leaves_the_embeddings_alone(grad: str | None) -> None:
    from training.classification import _Fgm

    model = _Tiny()
    before = model.emb.weight.detach().clone()
    if grad is not None:
        model.emb.weight.grad = torch.zeros(10, 4) if grad == "zero" else torch.full((10, 4), float("inf"))
    with _Fgm(model, eps=1.0).perturbed(torch.tensor([[1, 2]])) as pushed:
        assert not pushed  # before the first backward, or an fp16 overflow the loss scaler will skip
        assert torch.equal(model.emb.weight.detach(), before)


def test_trainer_applies_it_in_the_main_stage_only_and_it_changes_the_weights(
        settings, tiny_train: Path, tiny_dev: Path, fast_options: dict, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    tweets = tmp_path / "tweets.jsonl"
    tweets.write_text(tiny_train.read_text())  # any labelled file will do as the transfer stage's data
    cfg = SentimentTrainConfig(train_path=str(tiny_train), dev_path=str(tiny_dev), transfer_data=str(tweets),
                               adversarial_eps=1.0, **fast_options)
    with_adv = train_sentiment(cfg, settings)
    log = capsys.readouterr().err
    assert log.count("adversarial training (FGM) on the word embeddings, eps 1.0") == 1  # not in the transfer stage
    assert log.index("transfer stage: dev accuracy") < log.index("adversarial training (FGM)")
    assert with_adv.train_config()["adversarial_eps"] == 1.0

    without = train_sentiment(cfg.replace(adversarial_eps=0.0), settings)
    assert "adversarial training" not in capsys.readouterr().err
    a = load_file(with_adv.path / "model.safetensors")
    b = load_file(without.path / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same seed and data: the second loss moved the weights


def test_lora_says_the_frozen_embeddings_rule_it_out(settings, tiny_train: Path, fast_options: dict,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = SentimentTrainConfig(train_path=str(tiny_train), method="lora", dev_fraction=0.25, transfer_data=None,
                               adversarial_eps=1.0, **fast_options)
    assert train_sentiment(cfg, settings).metrics()["trainable_params"] > 0
    assert "adversarial training skipped: the word embeddings are frozen (lora)" in capsys.readouterr().err
