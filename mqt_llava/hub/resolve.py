"""Model references: a local folder or a Hugging Face hub id, resolved to a folder in our format.

Everything goes through `huggingface_hub` (its cache, `revision`, `HF_HUB_OFFLINE`, `HF_TOKEN`
and stored logins), so a model downloaded once is found offline later. A repository in the
original release's layout (`model_type: llava_llama`, e.g. `gordonhu/MQT-LLaVA-7b`) is converted
once into a cache keyed by repository and commit, and reused on later calls.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

CACHE_ENV = "MQT_LLAVA_CACHE"
OUR_MODEL_TYPE = "mqt_llava"
RELEASE_MODEL_TYPE = "llava_llama"
MARKER = "mqt_llava_conversion.json"  # written last into a cached conversion: it is complete
# What a model needs; the weights of one format only (safetensors preferred, else .bin).
CONFIG_PATTERNS = ["*.json", "*.jinja", "tokenizer.model", "*.txt", "*.md"]
SAFETENSORS_PATTERNS = [*CONFIG_PATTERNS, "*.safetensors"]
BIN_PATTERNS = [*CONFIG_PATTERNS, "*.bin"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def converted_cache_dir() -> Path:
    """Where hub checkpoints in the release's layout are converted: `$MQT_LLAVA_CACHE`, else
    `$HF_HOME/mqt_llava/converted`."""
    return Path(os.environ.get(CACHE_ENV) or Path(constants.HF_HOME) / "mqt_llava" / "converted")


def looks_like_repo_id(ref: str) -> bool:
    """`name` or `owner/name` (hub rules), and not a path-looking string (`./x`, `/x`, `~`)."""
    return bool(_REPO_ID.match(ref)) and ".." not in ref and "--" not in ref


def _hub_error(repo_id: str, err: Exception, what: str = "model") -> ValueError:
    """One line for what the hub (or its cache) said."""
    if isinstance(err, GatedRepoError):
        reason = "the repository is gated: accept its terms on the hub and log in (HF_TOKEN)"
    elif isinstance(err, RepositoryNotFoundError):
        reason = "no such repository on the hub (or it is private: log in or set HF_TOKEN)"
    elif isinstance(err, RevisionNotFoundError):
        reason = "no such revision in the repository"
    elif isinstance(err, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        reason = (
            "not in the local hub cache, and downloading is off (HF_HUB_OFFLINE=1)"
            if constants.HF_HUB_OFFLINE
            else "not in the local hub cache, and the hub could not be reached"
        )
    elif isinstance(err, EntryNotFoundError):
        reason = "the repository has no config.json"
    else:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"{what} {repo_id!r} is not a local folder, and on the hub: {reason}.")


_HUB_ERRORS = (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, OSError)


def _download(repo_id: str, patterns: list[str], revision: str | None, token) -> Path:
    return Path(snapshot_download(repo_id, revision=revision, token=token, allow_patterns=patterns))


def _has(folder: Path, suffix: str) -> bool:
    return any(folder.glob(f"*{suffix}"))


def download_repo(
    repo_id: str, revision: str | None = None, token=None, weights: bool = True, what="model"
) -> Path:
    """A hub repository's snapshot folder (from the cache when it is there).

    Args:
        repo_id: `owner/name`.
        revision: Branch, tag or commit (the default branch when `None`).
        token: Passed to `huggingface_hub` (`None`: its own token lookup).
        weights: Also fetch the weights (safetensors, else `.bin`); configs only otherwise.
        what: How the repository is called in errors.

    Raises:
        ValueError: One line saying why the hub or its cache could not provide it.
    """
    try:
        if not weights:
            return _download(repo_id, CONFIG_PATTERNS, revision, token)
        folder = _download(repo_id, SAFETENSORS_PATTERNS, revision, token)
        if not _has(folder, ".safetensors"):
            folder = _download(repo_id, BIN_PATTERNS, revision, token)
    except _HUB_ERRORS as err:
        raise _hub_error(repo_id, err, what) from None
    return folder


def download_tower(name: str, weights: bool = True) -> Path:
    """The release's `mm_vision_tower` (a hub id such as `openai/clip-vit-large-patch14-336`).

    Raises:
        ValueError: `name` is neither a local folder nor a hub repository we can reach.
    """
    if not looks_like_repo_id(name):
        raise ValueError(f"vision tower {name!r} is not a model folder (no config.json).")
    return download_repo(name, weights=weights, what="vision tower")


def source_folder(src: str, revision: str | None = None, token=None) -> tuple[Path, str | None]:
    """What `convert SRC` reads: a local path as it is, or a hub id's snapshot (downloaded once).

    Returns:
        `(folder, source)`; `source` is `owner/name@commit` for a hub id, else None.
    """
    if Path(src).exists() or not looks_like_repo_id(str(src)):
        return Path(src), None
    folder = download_repo(str(src), revision, token, what="checkpoint")
    return folder, f"{src}@{folder.name}"


def resolve_model(
    ref: str | os.PathLike,
    revision: str | None = None,
    token=None,
    say: Callable[[str], None] = _say,
) -> Path:
    """A folder in this library's format for a local folder or a hub id.

    Args:
        ref: A folder written by `convert`, training or `save_pretrained`; or a hub id, either
            already in this format or in the original release's layout (converted once, cached
            under [`converted_cache_dir`] by repository and commit).
        revision: Hub branch, tag or commit.
        token: Hub token (`None`: `huggingface_hub`'s own lookup, e.g. `HF_TOKEN`).
        say: Where the one-line conversion / reuse notices go (stderr by default).

    Raises:
        FileNotFoundError: `ref` looks like a path but is not a model folder.
        ValueError: A hub id the hub (or its cache) cannot provide, or of another model type.
    """
    path = Path(ref)
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{ref} is not a model folder (no config.json).")
        kind = _model_type(path / "config.json")
        if kind == RELEASE_MODEL_TYPE:
            raise ValueError(
                f"{ref} is in the original release's layout (llava_llama): convert it once with "
                f"`mqt-llava convert {ref} DST` and load DST."
            )
        return path
    text = str(ref)
    if isinstance(ref, Path) and os.sep != "/":
        text = text.replace(os.sep, "/")
    if not looks_like_repo_id(text):
        raise FileNotFoundError(f"{ref} is not a model folder (no such folder).")
    try:
        config_file = Path(hf_hub_download(text, "config.json", revision=revision, token=token))
    except _HUB_ERRORS as err:
        raise _hub_error(text, err) from None
    commit = config_file.parent.name  # snapshots/<commit>/config.json in the hub cache
    kind = _model_type(config_file)
    if kind == OUR_MODEL_TYPE:
        return download_repo(text, revision, token)
    if kind != RELEASE_MODEL_TYPE:
        raise ValueError(
            f"{text} is a {kind!r} model, neither an MQT-LLaVA model in this library's format "
            f"({OUR_MODEL_TYPE!r}) nor the original release ({RELEASE_MODEL_TYPE!r})."
        )
    target = converted_cache_dir() / f"models--{text.replace('/', '--')}" / commit
    if (target / MARKER).is_file():
        say(f"Using {text}@{commit[:12]} converted earlier, cached in {target}.")
        return target
    source = download_repo(text, revision, token)
    say(
        f"Converting {text}@{commit[:12]} from the original llava_llama layout, once, into "
        f"{target} (later calls reuse it)."
    )
    from ..model.convert import convert_checkpoint
    from .card import write_model_card

    convert_checkpoint(
        source,
        target,
        overwrite=True,
        source=f"{text}@{commit}",
        fetch_tower=download_tower,
        write_card=write_model_card,
    )
    (target / MARKER).write_text(json.dumps({"repo_id": text, "commit": commit}) + "\n")
    return target


def _model_type(config_file: Path) -> str | None:
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_file} is not a readable config.json ({err}).") from None
    return config.get("model_type") if isinstance(config, dict) else None
