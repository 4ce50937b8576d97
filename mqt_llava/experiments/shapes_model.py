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
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from ..model import MQTLlavaConfig, MQTLlavaForConditionalGeneration, MQTLlavaProcessor
from ..model.chat_templates import LLAVA_V1_SYSTEM

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


@dataclass
class ShapesModelSpec:
    """Sizes of the ShapesVQA model (about 3 M parameters; a few MB in float32).

    This is the `model:` section of the experiment's recipe (overridable with `--set model.*`),
    not a preset: it also sizes the tokenizer learnt from the data and seeds the initialisation,
    and the config it builds takes its token ids from that tokenizer. The model it produced and
    shipped is the `bundled` preset (`mqt_llava.model.presets`), read from its `config.json`.
    """

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
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
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
