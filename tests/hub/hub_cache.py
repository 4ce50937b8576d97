"""Builds repositories in huggingface_hub's own cache layout, from local files, for offline tests.

`models--OWNER--NAME/{blobs/<hash>, refs/<revision>, snapshots/<commit>/<file> -> blob}`: the
layout `hf_hub_download` / `snapshot_download` write and read (`scan_cache_dir` checks it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def add_repo(cache: Path, repo_id: str, files: dict[str, Path | bytes], revision="main") -> str:
    """Puts `files` (repository path -> local file or bytes) into `cache` as `repo_id`.

    Returns:
        The commit hash the snapshot is stored under.
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    contents = {
        name: data if isinstance(data, bytes) else Path(data).read_bytes()
        for name, data in sorted(files.items())
    }
    commit = hashlib.sha1(
        b"".join(name.encode() + hashlib.sha256(data).digest() for name, data in contents.items())
    ).hexdigest()
    snapshot = repo / "snapshots" / commit
    for name, data in contents.items():
        digest = hashlib.sha256(data).hexdigest()  # LFS files are stored under their sha256
        (blobs / digest).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blobs / digest, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return commit


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder`, by its path relative to it."""
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
