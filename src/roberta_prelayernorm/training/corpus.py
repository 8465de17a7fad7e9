"""A tokenized corpus on disk, for masked-LM pre-training on corpora larger than memory.

    DIR/tokens.bin     the token stream: every document as <s> text </s>, one after the other (uint16 when
                       the vocabulary fits, else uint32), read through a memory map
    DIR/documents.npy  int64 offsets into the stream: document d is tokens[offsets[d]:offsets[d + 1]]
    DIR/corpus.json    metadata (written last: a folder without it is not a finished corpus)

`write_corpus` tokenizes text files chunk by chunk into DIR/.chunks/; a killed run started again skips the
finished chunks. `CorpusBlocks` cuts the stream into blocks of max_length tokens exactly as the masked-LM
task cuts a JSON Lines corpus, and reads only the blocks asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Iterator

import numpy as np

from ..errors import SettingError
from ..files import atomic_write, atomic_write_text, exclusive_lock

METADATA = "corpus.json"
TOKENS = "tokens.bin"
DOCUMENTS = "documents.npy"
CHUNKS = ".chunks"
FORMAT_VERSION = 1


class CorpusError(SettingError):
    """A corpus folder that cannot be written or read as asked."""


def tokenizer_hash(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (vocabulary, merges, normalisation, special tokens)."""
    return hashlib.sha256(tokenizer._tokenizer.to_str().encode("utf-8")).hexdigest()


def save_array(path: str, array: np.ndarray) -> None:
    """np.save, atomically (np.save given a name would add ".npy" to the temporary file's)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def is_corpus(path) -> bool:
    return path is not None and os.path.isfile(os.path.join(path, METADATA))


def read_texts(paths: list[str]) -> Iterator[str]:
    """The documents of the files in order: each non-empty line of a text file, or the "text" of each record
    of a .jsonl file."""
    for path in paths:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise CorpusError(f"{path}:{number}: not UTF-8 text (byte {err.start + 1} of the line is "
                                      f"{raw[err.start]:#04x}); only UTF-8 files are read") from None
                if not line.strip():
                    continue
                if path.endswith(".jsonl"):
                    try:
                        text = json.loads(line).get("text")
                    except (json.JSONDecodeError, AttributeError):
                        text = None
                    if not isinstance(text, str):
                        raise CorpusError(f"{path}:{number}: expected a JSON object with a \"text\" string")
                    yield text
                else:
                    yield line.rstrip("\r\n")


# Memory is bounded by bytes of text, not documents: a chunk (the unit of resumption) holds its texts and
# their token stream as an array; the tokenizer's token lists (up to ~100 bytes of memory per byte of text
# with a small vocabulary's short tokens) are made and turned into arrays BATCH_BYTES of text at a time.
CHUNK_BYTES = 32_000_000
BATCH_BYTES = 1_000_000


def by_bytes(texts: Iterator[str], limit: int) -> Iterator[tuple[list[str], int]]:
    """Consecutive runs of `texts` and their size: each run ends once it reaches `limit` bytes of UTF-8 text
    (a newline counted after each text; a text longer than `limit` is a run of its own)."""
    run, size = [], 0
    for text in texts:
        run.append(text)
        size += len(text.encode("utf-8")) + 1
        if size >= limit:
            yield run, size
            run, size = [], 0
    if run:
        yield run, size


def write_corpus(paths: list[str], tokenizer, output: str, chunk_bytes: int = CHUNK_BYTES,
                 progress: bool = True) -> dict:
    """Tokenize `paths` into the corpus folder `output` (resuming a killed run); returns the metadata.

    A chunk ends once its documents reach `chunk_bytes` bytes of UTF-8 text (see by_bytes)."""
    for path in paths:
        if not os.path.isfile(path):
            raise CorpusError(f"TEXT_FILES: {path!r} is not a file")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise CorpusError(f"chunk_bytes={chunk_bytes!r} must be an int >= 1")
    vocab = len(tokenizer)
    plan = {"format": FORMAT_VERSION, "tokenizer_sha256": tokenizer_hash(tokenizer), "vocab_size": vocab,
            "dtype": "uint16" if vocab <= 2**16 else "uint32", "chunk_bytes": chunk_bytes,
            "sources": [source_fingerprint(p) for p in paths]}
    if is_corpus(output):
        raise CorpusError(f"--output {output!r} already holds a finished corpus; choose another folder")
    with exclusive_lock(output):  # one run per folder: a second is refused at once, naming the first
        return _write_corpus(paths, tokenizer, output, plan, progress)


def source_fingerprint(path: str) -> dict:
    """A text file as a corpus plan records it: its content's sha256, so that a resumed run notices a file
    edited since, even to the same size."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": os.path.abspath(path), "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def plan_differences(before: dict, now: dict) -> list[str]:
    """What differs between a partial corpus's plan and this run's, in words."""
    changed = [f"{key} {before.get(key)!r} then, {now[key]!r} now" for key in now
               if key != "sources" and before.get(key) != now[key]]
    sources = before.get("sources") or []
    if [source["path"] for source in sources] != [source["path"] for source in now["sources"]]:
        changed.append("its files were " + ", ".join(source["path"] for source in sources))
    else:
        changed += [f"{new['path']} changed since (sha256 {(old.get('sha256') or 'unknown')[:12]} then, "
                    f"{new['sha256'][:12]} now)" for old, new in zip(sources, now["sources"]) if old != new]
    return changed


def _write_corpus(paths: list[str], tokenizer, output: str, plan: dict, progress: bool) -> dict:
    """write_corpus's work, holding the folder's lock."""
    from tqdm.auto import tqdm

    chunk_bytes = plan["chunk_bytes"]
    chunks = os.path.join(output, CHUNKS)
    os.makedirs(chunks, exist_ok=True)
    plan_path = os.path.join(chunks, "plan.json")
    if os.path.exists(plan_path):
        with open(plan_path, encoding="utf-8") as f:
            differences = plan_differences(json.load(f), plan)
        if differences:
            raise CorpusError(f"--output {output!r} holds a partial corpus of other files, tokenizer or chunk size "
                              f"({'; '.join(differences)}); remove it or choose another folder")
    else:
        atomic_write_text(plan_path, json.dumps(plan, indent=2))
    dtype = np.dtype(plan["dtype"])

    def write_chunk(i, texts):
        lengths, streams = [], []
        for batch, _ in by_bytes(texts, BATCH_BYTES):
            encoding = tokenizer(batch, verbose=False)["input_ids"]
            lengths.extend(len(ids) for ids in encoding)
            streams.append(np.fromiter((t for ids in encoding for t in ids), dtype=dtype))
        atomic_write(chunk_path(chunks, i, "bin"), np.concatenate(streams).tofile)
        save_array(chunk_path(chunks, i, "len"), np.array(lengths, dtype=np.int64))  # last: marks the chunk done

    total_bytes = sum(s["bytes"] for s in plan["sources"])
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="tokenize", disable=not progress)
    count = 0
    for count, (texts, size) in enumerate(by_bytes(read_texts(paths), chunk_bytes), 1):
        if not os.path.exists(chunk_path(chunks, count - 1, "len")):  # finished chunks of a killed run are kept
            write_chunk(count - 1, texts)
        bar.update(size)
    bar.update(max(total_bytes - bar.n, 0))  # the text's bytes approximate the files' (blank lines, JSON)
    bar.close()
    return _join_chunks(output, plan, count)


def chunk_path(chunks: str, i: int, kind: str) -> str:
    return os.path.join(chunks, f"chunk-{i:06d}.{kind}")


def _join_chunks(output: str, plan: dict, count: int) -> dict:
    """Concatenate the chunks into tokens.bin and documents.npy, write corpus.json, drop the chunks."""
    chunks = os.path.join(output, CHUNKS)
    lengths = [np.load(chunk_path(chunks, i, "len")) for i in range(count)]
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [])]).astype(np.int64)

    def write_tokens(tmp):
        with open(tmp, "wb") as out:
            for i in range(count):
                with open(chunk_path(chunks, i, "bin"), "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 24)

    atomic_write(os.path.join(output, TOKENS), write_tokens)
    save_array(os.path.join(output, DOCUMENTS), offsets)
    metadata = {**{k: v for k, v in plan.items() if k != "chunk_bytes"},
                "documents": len(offsets) - 1, "tokens": int(offsets[-1])}
    atomic_write_text(os.path.join(output, METADATA), json.dumps(metadata, indent=2) + "\n")
    shutil.rmtree(chunks)
    return metadata


class CorpusBlocks:
    """The masked-LM features of a corpus folder, read on demand: block i is tokens[i*L:(i+1)*L] (the last
    may be shorter), with <s> and </s> of each document marked special, as MaskedLM.features makes them."""

    def __init__(self, path: str, max_length: int, tokenizer=None):
        with open(os.path.join(path, METADATA), encoding="utf-8") as f:
            self.metadata = json.load(f)
        if tokenizer is not None and self.metadata["tokenizer_sha256"] != tokenizer_hash(tokenizer):
            raise CorpusError(f"--train {path!r} was tokenized with another tokenizer (sha256 "
                              f"{self.metadata['tokenizer_sha256'][:12]}...); use that tokenizer or re-run "
                              "tokenize-corpus with this one")
        self.tokens = np.memmap(os.path.join(path, TOKENS), dtype=self.metadata["dtype"], mode="r",
                                shape=(self.metadata["tokens"],)) if self.metadata["tokens"] else np.zeros(0)
        self.offsets = np.load(os.path.join(path, DOCUMENTS), mmap_mode="r")
        self.max_length = max_length

    def __len__(self) -> int:
        return -(-len(self.tokens) // self.max_length)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.max_length
        ids = self.tokens[start:start + self.max_length].astype(np.int64)
        end = start + len(ids)
        special = np.zeros(len(ids), dtype=np.int64)
        first = np.searchsorted(self.offsets, start)  # documents that start (and end) inside the block
        last = np.searchsorted(self.offsets, end, side="right")
        starts = np.asarray(self.offsets[first:last])
        special[starts[starts < end] - start] = 1  # <s>
        ends = np.asarray(self.offsets[max(first, 1):last + 1]) - 1
        special[ends[(ends >= start) & (ends < end)] - start] = 1  # </s>
        return {"input_ids": ids.tolist(), "special_tokens_mask": special.tolist(),
                "attention_mask": [1] * len(ids), "example": i}
