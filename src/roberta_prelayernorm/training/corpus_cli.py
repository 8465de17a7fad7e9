"""`roberta-prelayernorm tokenize-corpus`: text files -> a memory-mapped token corpus for `train --train DIR`."""

from __future__ import annotations

import argparse
import json

from .corpus import CHUNK_BYTES

EXAMPLES = """examples:
  # tokenize a corpus (one document per line; .jsonl files: one {"text": ...} per line) with a model's tokenizer
  roberta-prelayernorm tokenize-corpus wiki.txt books.txt --tokenizer andreasmadsen/efficient_mlm_m0.40 \\
      --output corpus/

  # a killed run continues where it stopped: run the same command again
  roberta-prelayernorm tokenize-corpus wiki.txt books.txt --tokenizer andreasmadsen/efficient_mlm_m0.40 \\
      --output corpus/

  # pre-train on it: blocks of --max-length tokens are read from the memory map, never loaded whole
  roberta-prelayernorm train --task masked-lm --model CONFIG_DIR --from-scratch --train corpus/ --output out/mlm

output: DIR/tokens.bin (the token stream, uint16 when the vocabulary fits, else uint32), DIR/documents.npy
(document offsets), DIR/corpus.json (tokenizer sha256, vocab size, dtype, counts; written last).
"""


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "tokenize-corpus", help="tokenize text files into a memory-mapped corpus for masked-LM pre-training",
        description="Tokenize text files into a corpus folder that `train --task masked-lm --train DIR` reads "
                    "through a memory map. Each document becomes <s> text </s>, as in the JSON Lines path. "
                    "Work goes in chunks; a killed run started again skips the chunks it finished.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    parser.add_argument("text_files", nargs="+", metavar="TEXT_FILES",
                        help="text files (a document per non-empty line) or .jsonl files (a \"text\" per record)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder or hub id")
    parser.add_argument("--output", required=True, help="the corpus folder to write")
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES,
                        help="bytes of text per chunk, the unit of resumption; memory holds one chunk's text and "
                             f"its tokens (default {CHUNK_BYTES})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_tokenize_corpus)


def run_tokenize_corpus(args) -> int:
    """Errors (a bad file, a partial folder of other settings) become one line with exit code 2 in cli.main."""
    from ..tokenizer import AutoTokenizer
    from .corpus import write_corpus

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    metadata = write_corpus(args.text_files, tokenizer, args.output, args.chunk_bytes,
                            progress=not args.no_progress)
    print(json.dumps({k: metadata[k] for k in ("documents", "tokens", "dtype", "vocab_size")}))
    return 0
