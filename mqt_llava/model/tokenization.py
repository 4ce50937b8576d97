"""The release's LLaMA tokenizer: sentencepiece with the rules of `LlamaTokenizer(legacy=False)`.

The original code tokenizes with the slow `transformers` 4.x `LlamaTokenizer` (`legacy: false`,
through `sentencepiece`). transformers 5 loads the same `tokenizer.model` as a `tokenizers`
BPE whose `Metaspace` pre-tokenizer adds the word-start `▁` only when the text does not already
start with a space. The slow tokenizer always adds it, so a text piece that starts with a space
keeps a lone `▁` (id 29871 in LLaMA's vocabulary) in front: `" leading"` is `[1, 29871, 8236]`
for the release and `[1, 8236]` for the rebuilt tokenizer. Pieces that start with a space are
common in the release's prompts: `tokenizer_image_token` tokenizes the text between `<image>`
placeholders separately (`"<image>\\nCompare <image> with this one."`).

[`LlavaLlamaTokenizer`] keeps the `tokenizer.model` and applies the slow tokenizer's rules on top
of `transformers`' sentencepiece backend, so converted checkpoints tokenize exactly as the
release did (tested against `sentencepiece` with LLaMA's real vocabulary).
"""

from __future__ import annotations

from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend


class LlavaLlamaTokenizer(SentencePieceBackend):
    """`LlamaTokenizer` of transformers 4.x over a sentencepiece `tokenizer.model`.

    Args:
        vocab_file: The sentencepiece model (`tokenizer.model`).
        legacy: The release sets `False`: no `▁` after special tokens, a lone `▁` kept before a
            leading space. `True` gives the older behaviour.
        add_bos_token: Prepend `<s>` (the release: yes).
        add_eos_token: Append `</s>` (the release: no).
        add_prefix_space: Add the word-start `▁` in front of the text (the release: yes).
    """

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        unk_token: str = "<unk>",
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        pad_token: str | None = None,
        legacy: bool = False,
        add_bos_token: bool = True,
        add_eos_token: bool = False,
        add_prefix_space: bool = True,
        clean_up_tokenization_spaces: bool = False,
        **kwargs,
    ):
        self.add_bos_token = add_bos_token
        self.add_eos_token = add_eos_token
        self.add_prefix_space = add_prefix_space
        super().__init__(
            vocab_file=vocab_file,
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            pad_token=pad_token,
            legacy=legacy,
            add_prefix_space=add_prefix_space,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )

    def tokenize(self, text: str, **kwargs) -> list[str]:
        """Pieces of `text`, as transformers 4.x `LlamaTokenizer.tokenize` gives them."""
        if self.legacy or len(text) == 0:
            return super().tokenize(text, **kwargs)
        text = text.replace(SPIECE_UNDERLINE, " ")
        if self.add_prefix_space:
            text = SPIECE_UNDERLINE + text
        tokens = super().tokenize(text, **kwargs)
        # A text that starts with a special token: the prefix `▁` stands alone; drop it.
        special = self.all_special_tokens
        if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in special:
            tokens = tokens[1:]
        return tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Joins pieces back into text; the added prefix space is removed, special tokens kept."""
        if tokens and tokens[0].startswith(SPIECE_UNDERLINE) and self.add_prefix_space:
            tokens = [tokens[0][1:], *tokens[1:]]
        pieces: list[str] = []
        out = ""
        prev_is_special = False
        special = set(self.all_special_tokens)
        for i, token in enumerate(tokens):
            if token in special:  # special tokens are not decoded by sentencepiece
                if not prev_is_special and i != 0 and self.legacy:
                    out += " "
                out += self.sp_model.decode(pieces) + token
                prev_is_special, pieces = True, []
            else:
                if (
                    prev_is_special
                    and i == 1
                    and self.add_prefix_space
                    and not token.startswith(SPIECE_UNDERLINE)
                ):
                    out += " "
                pieces.append(token)
                prev_is_special = False
        return out + self.sp_model.decode(pieces)

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """`<s>` (and `</s>` if `add_eos_token`) around each sequence, as the release did."""
        bos = [self.bos_token_id] if self.add_bos_token else []
        eos = [self.eos_token_id] if self.add_eos_token else []
        ids = bos + token_ids_0 + eos
        if token_ids_1 is not None:
            ids += bos + token_ids_1 + eos
        return ids

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 where [`build_inputs_with_special_tokens`] adds a special token, else 0."""
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, True)
        bos = [1] if self.add_bos_token else []
        eos = [1] if self.add_eos_token else []
        mask = bos + [0] * len(token_ids_0) + eos
        if token_ids_1 is not None:
            mask += bos + [0] * len(token_ids_1) + eos
        return mask
