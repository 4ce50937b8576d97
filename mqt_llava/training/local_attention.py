"""A local start for the Matryoshka connector's attention (the ShapesVQA recipe's
`connector_init: local | nested`).

The release's initialisation makes every query attend almost uniformly to all patches, so every
visual token starts as the image average; a randomly initialised language model then has nothing
local to learn from. `init_local_attention` fits the queries and the query/key path so that
query k attends to a Gaussian around its own grid cell (docs/shapes.md). It is an
initialisation of the connector (a fit of its attention map to fixed targets, no data), which the
training stages then train further.
"""

from __future__ import annotations

import torch


def _grid_centres(rows: int, cols: int, f_rows: int, f_cols: int) -> torch.Tensor:
    """(rows * cols, 2) centres of a rows x cols grid of cells laid over the patch grid, in
    patch units (y, x), row-major."""
    ys = (torch.arange(rows) + 0.5) * f_rows / rows - 0.5
    xs = (torch.arange(cols) + 0.5) * f_cols / cols - 0.5
    return torch.stack([t.flatten() for t in torch.meshgrid(ys, xs, indexing="ij")], dim=1)


def nested_order(rows: int, cols: int) -> list[int]:
    """Coarse-to-fine order of a rows x cols grid's cells (row-major indices): one cell per
    quadrant, then one per block of a 4 x 4 split, and so on, each block's cell the one
    nearest its centre, so that every prefix is spread over the whole grid."""
    order: list[int] = []
    chosen: set[int] = set()
    g = 2
    while True:
        splits_y, splits_x = min(g, rows), min(g, cols)
        for by in range(splits_y):
            for bx in range(splits_x):
                y0, y1 = by * rows // splits_y, (by + 1) * rows // splits_y
                x0, x1 = bx * cols // splits_x, (bx + 1) * cols // splits_x
                block = [y * cols + x for y in range(y0, y1) for x in range(x0, x1)]
                if chosen.intersection(block):
                    continue
                cy, cx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2
                cell = min(block, key=lambda c: ((c // cols - cy) ** 2 + (c % cols - cx) ** 2, c))
                order.append(cell)
                chosen.add(cell)
        if g >= max(rows, cols):
            return order
        g *= 2


def local_attention_targets(
    query_grid: tuple[int, int],
    feature_grid: tuple[int, int],
    sigmas: list[float],
    nested: bool = False,
) -> torch.Tensor:
    """Per head, a Gaussian over the patch grid centred on each query's cell.

    Args:
        query_grid: (rows, cols) of the queries.
        feature_grid: (rows, cols) of the patches.
        sigmas: Per head, the Gaussian's width in patches.
        nested: Order the queries coarse to fine for Matryoshka budgets: query k takes the
            k-th cell of `nested_order` and widths scaled by `max(1, s / sqrt(k + 1))`, s a
            quarter of the patch grid's side, so the first m queries tile the image at the
            resolution m tokens allow (from query 15 on, one cell's width each).
            Otherwise row-major cells and the same widths for every query.

    Returns:
        (heads, M, N) rows that sum to 1.
    """
    (q_rows, q_cols), (f_rows, f_cols) = query_grid, feature_grid
    centres = _grid_centres(q_rows, q_cols, f_rows, f_cols)  # (M, 2)
    scale = torch.ones(len(centres))
    if nested:
        centres = centres[nested_order(q_rows, q_cols)]
        rank = torch.arange(len(centres), dtype=torch.float32)
        scale = (max(f_rows, f_cols) / 4 / (rank + 1).sqrt()).clamp_min(1.0)  # (M,)
    patches = _grid_centres(f_rows, f_cols, f_rows, f_cols)  # (N, 2): integer positions
    distance2 = ((centres[:, None] - patches[None]) ** 2).sum(-1)  # (M, N)
    return torch.stack(
        [torch.softmax(-distance2 / (2 * (s * scale[:, None]) ** 2), dim=-1) for s in sigmas]
    )


def init_local_attention(
    connector: torch.nn.Module,
    sigmas: list[float] | None = None,
    nested: bool = False,
    steps: int = 300,
    lr: float = 1e-2,
) -> float:
    """Starts the connector's queries attending near their own grid cell, head h with a
    Gaussian of `sigmas[h]` patches (default 2^h: 1, 2, 4, 8 for four heads); with `nested`,
    coarse to fine in query order (`local_attention_targets`).

    The release's initialisation makes every query attend almost uniformly to all patches (an
    effective 250 of 256), so every visual token starts as the image average and a randomly
    initialised language model has nothing local to learn from. This fits the queries, the
    q/k projections and their layer norms (keys as released: positions only; features zero) by
    cross-entropy to the targets; the value path is left as initialised. All of it keeps
    training afterwards.

    Returns:
        The final cross-entropy (its floor is the targets' entropy).
    """
    heads = connector.attn.num_heads
    sigmas = [2.0**h for h in range(heads)] if sigmas is None else list(sigmas)
    if len(sigmas) != heads:
        raise ValueError(f"connector_sigmas needs one width per head ({heads}), got {sigmas}")
    targets = local_attention_targets(
        connector.query_grid, connector.feature_grid, sigmas, nested=nested
    )
    width = connector.query.shape[1]
    num_features = targets.shape[-1]
    values = connector.attn.in_proj_weight.detach()[2 * width :].clone()
    value_bias = connector.attn.in_proj_bias.detach()[2 * width :].clone()
    params = [
        connector.query,
        connector.attn.in_proj_weight,
        connector.attn.in_proj_bias,
        *connector.ln_q.parameters(),
        *connector.ln_k.parameters(),
    ]
    optimizer = torch.optim.Adam(params, lr=lr)
    zeros = torch.zeros(1, num_features, width)
    for _ in range(steps):
        _, weights = connector(zeros, connector.num_queries, need_weights=True)  # (1, h, M, N)
        loss = -(targets * weights[0].clamp_min(1e-9).log()).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # only the query/key path is being shaped
            connector.attn.in_proj_weight[2 * width :] = values
            connector.attn.in_proj_bias[2 * width :] = value_bias
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
