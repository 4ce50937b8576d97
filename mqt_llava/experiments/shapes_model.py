"""The ShapesVQA default model built from nothing: a tokenizer learnt from the generated text and
a small randomly initialised MQT-LLaVA (CLIP-style encoder, Matryoshka connector, Llama decoder).

The folder written by [`build_initial_model`] loads with `from_pretrained`; the training recipes
then train it stage by stage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import CLIPImageProcessorPil, PreTrainedTokenizerFast

from ..model import MQTLlavaConfig, MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from ..model.chat_templates import LLAVA_V1_SYSTEM

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass
class ShapesModelSpec:
    """Sizes of the ShapesVQA model (about 3 M parameters; a few MB in float32)."""

    image_size: int = 64
    patch_size: int = 4  # 16 x 16 = 256 patch features, four times the queries
    vision_hidden: int = 96
    vision_layers: int = 3
    vision_heads: int = 4
    num_queries: int = 64  # 8 x 8 grid
    connector_heads: int = 4
    text_hidden: int = 160
    text_layers: int = 4
    text_heads: int = 4
    vocab_size: int = 512
    max_positions: int = 256
    key_source: str = "position"
    seed: int = 0


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learnt from the dataset's text (any text stays encodable).

    It adds a BOS token to every sequence, as LLaMA's tokenizer does, so the release's
    tokenization of the pieces around `<image>` applies unchanged.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=256,
        padding_side="right",
    )


def _corpus(dataset_dir: Path, max_records: int = 4000) -> list[str]:
    """Rendered conversations (template words included) so that frequent strings are one token."""
    texts = []
    for name in ("train.json", "captions.json"):
        records = json.loads((dataset_dir / name).read_text())[:max_records]
        for record in records:
            turns = [t["value"].replace("<image>", "").strip() for t in record["conversations"]]
            texts.append(f"{LLAVA_V1_SYSTEM} USER: {turns[0]} ASSISTANT: {turns[1]}</s>")
    return texts


def build_initial_model(dataset_dir: Path, out_dir: Path, spec: ShapesModelSpec) -> Path:
    """Writes a randomly initialised ShapesVQA model folder (weights, config, processor).

    Args:
        dataset_dir: A ShapesVQA folder from `mqt-llava data shapes` (its text trains the
            tokenizer).
        out_dir: Where to write the model folder.
        spec: Sizes.

    Returns:
        `out_dir`.
    """
    tokenizer = train_tokenizer(_corpus(dataset_dir), spec.vocab_size)
    side = spec.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = MQTLlavaProcessor(
        image_processor,
        tokenizer,
        num_queries=spec.num_queries,
        num_visual_tokens=spec.num_queries,
    )
    processor.tokenizer.model_max_length = spec.max_positions
    config = MQTLlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            image_size=side,
            patch_size=spec.patch_size,
            hidden_size=spec.vision_hidden,
            intermediate_size=2 * spec.vision_hidden,
            num_hidden_layers=spec.vision_layers,
            num_attention_heads=spec.vision_heads,
        ),
        text_config=dict(
            model_type="llama",
            hidden_size=spec.text_hidden,
            intermediate_size=2 * spec.text_hidden,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_heads,
            vocab_size=len(processor.tokenizer) - 1,  # <image> lies outside the LM vocabulary
            max_position_embeddings=spec.max_positions,
            bos_token_id=processor.tokenizer.bos_token_id,
            eos_token_id=processor.tokenizer.eos_token_id,
            pad_token_id=processor.tokenizer.pad_token_id,
            tie_word_embeddings=True,
        ),
        num_queries=spec.num_queries,
        num_heads=spec.connector_heads,
        vision_feature_layer=-1,  # the encoder is ours: no reason to waste its last layer
        image_token_id=processor.image_token_id,
        num_visual_tokens=spec.num_queries,
        key_source=spec.key_source,
    )
    torch.manual_seed(spec.seed)
    model = MQTLlavaForConditionalGeneration(config)
    model.generation_config.bos_token_id = processor.tokenizer.bos_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / "shapes_model_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return out_dir


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
