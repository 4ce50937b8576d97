"""Router: a tiny network that predicts, per budget, whether the model will answer right.

Its input is the image's visual tokens at a small probe budget (mean-pooled) and the question's
token embeddings (mean- and max-pooled, the language model's own embedding table). Its output is
one logit per rung of the ladder: the probability that the model's answer at that budget is
correct. It is trained on the model's own correctness across budgets (labels from `eval` runs at
every budget; no human labels beyond the benchmark's answers). The policy answers at the smallest
rung whose predicted probability is within `slack` of the best rung's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..budget import Attempt, BudgetPolicy, RowContext

WEIGHTS_FILE = "budget_router.safetensors"


class RouterNet(nn.Module):
    """Standardised features → one hidden layer → one correctness logit per ladder rung."""

    def __init__(self, features: int, budgets: int, hidden: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, budgets))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


@torch.inference_mode()
def router_features(model, processor, rows: Sequence[RowContext], probe: int) -> torch.Tensor:
    """(B, 3D) features: visual tokens at budget `probe` (mean), question embeddings (mean, max).

    The question is the prompt's text after its last image (the whole prompt without one).
    """
    embed = model.get_input_embeddings()
    image_id = model.config.image_token_id
    out = []
    for row in rows:
        count = row.prompt.count(processor.image_token)
        ids = processor.tokenize_prompt(row.prompt, [1] * count)
        positions = [i for i, t in enumerate(ids) if t == image_id]
        question = ids[positions[-1] + 1 :] if positions else ids
        words = embed(torch.tensor(question or ids, device=model.device)).float()  # (T, D)
        if row.visual_tokens is not None and count:
            visual = row.visual_tokens[:, :probe].float().reshape(-1, words.shape[-1]).mean(0)
        else:
            visual = torch.zeros(words.shape[-1], device=words.device)
        out.append(torch.cat([visual, words.mean(0), words.max(0).values]).cpu())
    return torch.stack(out)


def train_router(
    features: torch.Tensor,
    correct: torch.Tensor,
    hidden: int = 64,
    steps: int = 600,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> RouterNet:
    """Fits a [`RouterNet`] to (N, F) features and (N, K) correctness labels (full batch)."""
    if features.ndim != 2 or correct.shape != (features.shape[0], correct.shape[-1]):
        raise ValueError(
            f"expected features (N, F) and labels (N, K), got {tuple(features.shape)} and "
            f"{tuple(correct.shape)}."
        )
    torch.manual_seed(seed)
    net = RouterNet(features.shape[1], correct.shape[1], hidden)
    net.mean.copy_(features.mean(0))
    net.std.copy_(features.std(0).clamp_min(1e-6))
    optim = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    target = correct.float()
    for _ in range(steps):
        optim.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(net(features), target)
        loss.backward()
        optim.step()
    return net.eval()


def choose(probs: torch.Tensor, ladder: Sequence[int], slack: float) -> list[int]:
    """The smallest rung whose probability is within `slack` of the row's best rung."""
    best = probs.max(-1, keepdim=True).values
    ok = probs >= best - slack  # (B, K); the best rung always qualifies
    first = ok.float().argmax(-1)
    return [ladder[int(i)] for i in first]


class Router(BudgetPolicy):
    """Picks one budget per row from the router's predictions (no second attempt).

    Args:
        net: A trained [`RouterNet`].
        ladder: The budgets it predicts correctness for, increasing.
        probe: The budget whose visual tokens it reads.
        slack: How much predicted correctness may be given up for a smaller budget.
    """

    name = "router"

    def __init__(self, net: RouterNet, ladder: Sequence[int], probe: int = 4, slack: float = 0.0):
        self.net, self.ladder = net.eval(), [int(m) for m in ladder]
        if any(b <= a for a, b in itertools.pairwise(self.ladder)):
            raise ValueError(f"ladder must be increasing, got {self.ladder}.")
        if not 0.0 <= slack <= 1.0:
            raise ValueError(f"slack must be in [0, 1], got {slack}.")
        self.probe, self.slack = int(probe), float(slack)
        self.weights: str | None = None

    @torch.inference_mode()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """(B, K) predicted probabilities of a correct answer at each rung."""
        return torch.sigmoid(self.net(features.float()))

    def first(self, rows: Sequence[RowContext], model, processor) -> list[int]:
        big_m = model.config.num_queries
        if self.ladder[-1] > big_m or self.probe > big_m:
            raise ValueError(
                f"router ladder {self.ladder} / probe {self.probe} exceed M = {big_m}."
            )
        probs = self.predict(router_features(model, processor, rows, self.probe))
        return choose(probs, self.ladder, self.slack)

    def next(self, m: int, attempt: Attempt) -> int | None:
        return None

    def save(self, folder: str | Path) -> dict[str, Any]:
        """Writes the weights into `folder`; returns the description that reloads them."""
        from huggingface_hub import save_torch_state_dict

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pattern = WEIGHTS_FILE.replace(".safetensors", "{suffix}.safetensors")  # one small file
        save_torch_state_dict(self.net.state_dict(), folder, filename_pattern=pattern)
        self.weights = WEIGHTS_FILE
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "ladder": self.ladder,
            "probe": self.probe,
            "slack": self.slack,
            "hidden": self.net.net[0].out_features,
            "weights": self.weights or WEIGHTS_FILE,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any], base: Path | None = None) -> Router:
        from safetensors.torch import load_file

        path = Path(spec.get("weights", WEIGHTS_FILE))
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        if not path.is_file():
            raise FileNotFoundError(f"router weights {path} not found")
        state = load_file(str(path))
        features, hidden = state["net.0.weight"].shape[1], state["net.0.weight"].shape[0]
        net = RouterNet(features, state["net.2.weight"].shape[0], hidden)
        net.load_state_dict(state)
        router = cls(net, spec["ladder"], spec.get("probe", 4), spec.get("slack", 0.0))
        router.weights = str(spec.get("weights", WEIGHTS_FILE))
        return router
