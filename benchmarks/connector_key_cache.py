"""Prototype: cache the connector's image-independent key path and measure what it saves.

With `key_source="position"` (the release) the connector's keys are
`ln_k(resize(pos_embed))` projected by `w_k`: no image enters them, yet every call recomputes
the bicubic resize, the LayerNorm and the N x C x C key projection. This script patches a copy of
the connector so that its forward reuses the normed keys (`ln_k(key_positions)`), checks that the
outputs are identical, and times both, interleaved, in CPU time of one thread (medians).

    python benchmarks/connector_key_cache.py --repeats 30
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import types

import torch
import torch.nn.functional as F

from mqt_llava.benchmarks.flops import preset_config
from mqt_llava.benchmarks.latency import mid_config
from mqt_llava.model import MatryoshkaQueryTransformer


def cached_forward(self, image_features, num_visual_tokens, need_weights=False):
    """`MatryoshkaQueryTransformer.forward` with the position-only keys computed once."""
    m, dtype = num_visual_tokens, image_features.dtype
    key = self.__dict__.get("_key_cache")
    if key is None or key.dtype != dtype or key.shape[1] != image_features.shape[1]:
        key = self.ln_k(self.key_positions(image_features.shape[1]).to(dtype))[None]  # (1, N, C)
        self.__dict__["_key_cache"] = key
    query = self.ln_q(self.query[:m] + self.pos_embed[:m].to(self.query.dtype))  # (m, C)
    value = self.ln_v(image_features)  # (B, N, C)
    out, weights = self.attn(query[None].to(dtype), key, value, need_weights=need_weights)
    tokens = out @ self.proj  # (B, m, D)
    return (tokens, weights) if need_weights else tokens


def cached_projected_forward(self, image_features, num_visual_tokens, need_weights=False):
    """As [`cached_forward`], caching the keys after the key projection, split into heads."""
    if need_weights:
        return cached_forward(self, image_features, num_visual_tokens, need_weights)
    m, dtype, attn = num_visual_tokens, image_features.dtype, self.attn
    batch = image_features.shape[0]
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    key = self.__dict__.get("_projected_key_cache")
    if key is None or key.dtype != dtype or key.shape[2] != image_features.shape[1]:
        normed = self.ln_k(self.key_positions(image_features.shape[1]).to(dtype))[None]
        key = attn._split_heads(F.linear(normed, w_k, b_k), 1)  # (1, h, N, d)
        self.__dict__["_projected_key_cache"] = key
    query = self.ln_q(self.query[:m] + self.pos_embed[:m].to(self.query.dtype))  # (m, C)
    q = attn._split_heads(F.linear(query[None].to(dtype), w_q, b_q), batch)  # (B, h, m, d)
    v = attn._split_heads(F.linear(self.ln_v(image_features), w_v, b_v), batch)  # (B, h, N, d)
    out = F.scaled_dot_product_attention(q, key.expand(batch, -1, -1, -1), v)  # (B, h, m, d)
    out = attn.out_proj(out.transpose(1, 2).flatten(2))  # (B, m, C)
    return out @ self.proj  # (B, m, D)


def connector_for(config) -> MatryoshkaQueryTransformer:
    connector = MatryoshkaQueryTransformer(
        config.num_queries,
        tuple(config.query_grid),
        config.feature_grid,
        config.vision_config.hidden_size,
        config.text_config.hidden_size,
        config.num_heads,
    )
    connector.reset_parameters()
    return connector.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--budgets", default="1,16,256")
    args = parser.parse_args()
    torch.set_num_threads(1)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(
        f"{'config':>13} {'m':>4} {'now ms':>8} {'cache normed keys':>18} "
        f"{'cache projected keys':>21}"
    )
    for name, config in (("mid", mid_config()), ("mqt-llava-7b", preset_config("mqt-llava-7b"))):
        torch.manual_seed(0)
        now = connector_for(config)
        variants = {"now": now}
        for key, forward in (("normed", cached_forward), ("projected", cached_projected_forward)):
            variants[key] = copy.deepcopy(now)
            variants[key].forward = types.MethodType(forward, variants[key])
        rows, cols = config.feature_grid
        features = torch.randn(1, rows * cols, config.vision_config.hidden_size)  # (1, N, C)
        with torch.no_grad():
            for m in budgets:
                reference = now(features, m)
                for module in variants.values():
                    torch.testing.assert_close(module(features, m), reference)
                times = {key: [] for key in variants}
                order = list(variants.items())
                for rep in range(args.repeats):
                    for key, module in order[rep % 3 :] + order[: rep % 3]:  # interleaved
                        start = time.thread_time()
                        module(features, m)
                        times[key].append(time.thread_time() - start)
                ms = {key: 1e3 * statistics.median(t) for key, t in times.items()}
                cells = [
                    f"{ms[k]:7.2f} ({(ms['now'] - ms[k]) / ms['now']:6.1%})"
                    for k in ("normed", "projected")
                ]
                print(f"{name:>13} {m:>4} {ms['now']:8.2f} {cells[0]:>18} {cells[1]:>21}")


if __name__ == "__main__":
    main()
