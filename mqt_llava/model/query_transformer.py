"""The Matryoshka Query Transformer: image features (B, N, C) and a budget m -> (B, m, D).

One cross-attention from M learned queries to the vision features, of which the first m are used.
Each query attends independently (no self-attention, no FFN), so the output for m queries is
exactly the first m rows of the output for M queries: encode once at M, slice for any budget.

Parameter names equal the released checkpoint's keys under `model.query_abstractor.`, so loading
a converted checkpoint is renaming, not surgery.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn


def sincos_2d_table(embed_dim: int, rows: int, cols: int) -> torch.Tensor:
    """The MAE-style 2-D sin-cos table of a `rows x cols` grid.

    For grid index i (row r = i // cols, column c = i % cols) and
    w_k = 10000^(-k / (embed_dim / 4)), k < embed_dim / 4, the row of the table is
    `[sin(c w), cos(c w), sin(r w), cos(r w)]`: the first half encodes the *column*.

    Returns:
        Float32 tensor of shape (rows * cols, embed_dim).
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4, got {embed_dim}.")
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (C/4,)
    r, c = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64),
        torch.arange(cols, dtype=torch.float64),
        indexing="ij",
    )
    col = c.reshape(-1, 1) * omega  # (M, C/4)
    row = r.reshape(-1, 1) * omega  # (M, C/4)
    table = torch.cat([col.sin(), col.cos(), row.sin(), row.cos()], dim=1)  # (M, C)
    return table.float()


def resize_positions(
    pos: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]
) -> torch.Tensor:
    """Bicubic resize of a positional table from one grid to another, in float32.

    Args:
        pos: (src_rows * src_cols, C) table, row-major.
        src_grid: `(rows, cols)` of `pos`.
        dst_grid: `(rows, cols)` to resize to.

    Returns:
        Float32 tensor (dst_rows * dst_cols, C).
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos.float()
    rows, cols = src_grid
    grid = pos.float().reshape(1, rows, cols, -1).permute(0, 3, 1, 2)  # (1, C, rows, cols)
    grid = F.interpolate(grid, size=tuple(dst_grid), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).flatten(0, 2)  # (rows' * cols', C)


class PackedCrossAttention(nn.Module):
    """Multi-head cross-attention with `nn.MultiheadAttention`'s packed parameter layout.

    `in_proj_weight` stacks the q, k and v projections (rows 0:C, C:2C, 2C:3C), as the release's
    checkpoint stores them; the attention itself runs through `scaled_dot_product_attention`.
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}.")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _split_heads(self, x: torch.Tensor, batch: int) -> torch.Tensor:
        # (B or 1, L, C) -> (B, heads, L, C / heads); a shared (1, L, C) input is expanded
        x = x.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)
        return x.expand(batch, *x.shape[1:])

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attends `query` (1 or B, m, C) to `key` (1 or B, N, C) / `value` (B, N, C).

        Returns:
            The output (B, m, C) and, with `need_weights`, the attention map (B, heads, m, N).
        """
        batch = value.shape[0]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._split_heads(F.linear(query, w_q, b_q), batch)  # (B, h, m, d)
        k = self._split_heads(F.linear(key, w_k, b_k), batch)  # (B, h, N, d)
        v = self._split_heads(F.linear(value, w_v, b_v), batch)  # (B, h, N, d)
        weights = None
        if need_weights:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            weights = scores.float().softmax(dim=-1).to(q.dtype)  # (B, h, m, N)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, h, m, d)
        out = out.transpose(1, 2).flatten(2)  # (B, m, C)
        return self.out_proj(out), weights


class MatryoshkaQueryTransformer(nn.Module):
    """M learned queries cross-attending to vision features; the first m give m visual tokens.

    Args:
        num_queries: M.
        query_grid: `(rows, cols)` of the queries' positional grid, rows * cols == M.
        feature_grid: `(rows, cols)` of the vision patch grid (the keys), N = rows * cols.
        vision_dim: C, the width of the vision features (and of the attention).
        output_dim: D, the width of the language model.
        num_heads: Attention heads; C must be divisible by it.
        layer_norm_eps: Epsilon of `ln_q`, `ln_k`, `ln_v`.
        key_source: `"position"` (keys = positions only, as released) or `"content"`
            (keys = features + positions).
    """

    def __init__(
        self,
        num_queries: int,
        query_grid: tuple[int, int],
        feature_grid: tuple[int, int],
        vision_dim: int,
        output_dim: int,
        num_heads: int,
        layer_norm_eps: float = 1e-6,
        key_source: Literal["position", "content"] = "position",
    ):
        super().__init__()
        if key_source not in ("position", "content"):
            raise ValueError(f"key_source must be 'position' or 'content', got {key_source!r}.")
        self.num_queries = num_queries
        self.query_grid = tuple(query_grid)
        self.feature_grid = tuple(feature_grid)
        self.key_source = key_source
        self.query = nn.Parameter(torch.empty(num_queries, vision_dim))
        # Fixed, saved with the weights (the release stores it, rounded to float16).
        self.register_buffer("pos_embed", sincos_2d_table(vision_dim, *query_grid), persistent=True)
        self.attn = PackedCrossAttention(vision_dim, num_heads)
        self.ln_q = nn.LayerNorm(vision_dim, eps=layer_norm_eps)
        self.ln_k = nn.LayerNorm(vision_dim, eps=layer_norm_eps)
        self.ln_v = nn.LayerNorm(vision_dim, eps=layer_norm_eps)
        self.proj = nn.Parameter(torch.empty(vision_dim, output_dim))

    def reset_parameters(self, init: Any = nn.init) -> None:
        """The release's initialisation (Qwen-VL resampler).

        Args:
            init: Namespace of in-place initialisers with `torch.nn.init`'s names. Hugging Face
                loading passes `transformers.initialization`, whose functions skip tensors that
                were already loaded from a checkpoint.
        """
        rows, cols = self.query_grid
        with torch.no_grad():
            table = sincos_2d_table(self.query.shape[1], rows, cols)
            getattr(init, "copy_", torch.Tensor.copy_)(self.pos_embed, table)
            init.trunc_normal_(self.query, std=0.02)
            init.normal_(self.proj, std=self.query.shape[1] ** -0.5)
            init.xavier_uniform_(self.attn.in_proj_weight)
            init.zeros_(self.attn.in_proj_bias)
            init.trunc_normal_(self.attn.out_proj.weight, std=0.02)
            init.zeros_(self.attn.out_proj.bias)
            for norm in (self.ln_q, self.ln_k, self.ln_v):
                init.ones_(norm.weight)
                init.zeros_(norm.bias)

    def key_positions(self, num_features: int) -> torch.Tensor:
        """The query table bicubically resized to the feature grid: (N, C), float32."""
        rows, cols = self.feature_grid
        if rows * cols != num_features:
            raise ValueError(
                f"The connector expects {rows}x{cols}={rows * cols} vision features per image, got "
                f"{num_features}: check the vision tower's image_size/patch_size and "
                "vision_feature_select_strategy."
            )
        return resize_positions(self.pos_embed, self.query_grid, self.feature_grid)

    def forward(
        self, image_features: torch.Tensor, num_visual_tokens: int, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Encodes images into `num_visual_tokens` tokens each.

        Args:
            image_features: (B, N, C) vision features.
            num_visual_tokens: m, an integer in [1, M] (validated by the caller).
            need_weights: Also return the attention map (B, heads, m, N).

        Returns:
            (B, m, D) visual tokens, and the attention map if `need_weights`.
        """
        if not 1 <= num_visual_tokens <= self.num_queries:
            raise ValueError(
                f"num_visual_tokens must be between 1 and {self.num_queries}, "
                f"got {num_visual_tokens}."
            )
        m = num_visual_tokens
        dtype = image_features.dtype
        key_pos = self.key_positions(image_features.shape[1]).to(dtype)  # (N, C)
        query = self.ln_q(self.query[:m] + self.pos_embed[:m].to(self.query.dtype))  # (m, C)
        value = self.ln_v(image_features)  # (B, N, C)
        if self.key_source == "position":
            key = self.ln_k(key_pos)[None]  # (1, N, C): the same for every image
        else:
            key = self.ln_k(image_features + key_pos)  # (B, N, C)
        out, weights = self.attn(query[None].to(dtype), key, value, need_weights=need_weights)
        tokens = out @ self.proj  # (B, m, D)
        return (tokens, weights) if need_weights else tokens
