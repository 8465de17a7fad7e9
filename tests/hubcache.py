"""Lay out a folder as a Hugging Face hub cache entry, so loading by hub id works offline in tests."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import huggingface_hub.constants


def add_to_hub_cache(cache_dir: Path, repo_id: str, folder: Path, revision: str = "main") -> Path:
    """Copy `folder`'s files into `cache_dir` as the snapshot of `repo_id` at `revision`; returns the snapshot."""
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in Path(folder).iterdir():
        if path.is_file():
            shutil.copy(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def go_offline(monkeypatch, cache_dir: Path) -> None:
    """HF_HUB_OFFLINE=1 with `cache_dir` as the default hub cache (huggingface_hub reads both at import)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache_dir))
