"""`roberta-prelayernorm demo`: the project's main job end to end, offline, in a few minutes on a laptop CPU.

From the small corpus and task sets shipped with the package (roberta_prelayernorm/data: written for the
project, a few hundred templated examples each) it trains a byte-level BPE tokenizer, pre-trains a tiny model
with masked-LM (on the corpus tokenized into a memory-mapped folder, with sparse prediction), fine-tunes a
head for each task from it, evaluates and saves each, runs the task pipelines on the documentation's example
sentences, and prints a table of the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib import resources

from .errors import SettingError


REAL_CHECKPOINT = "andreasmadsen/efficient_mlm_m0.40"

SENTENCE = "Hello, my dog is cute"
NER_TEXT = "HuggingFace is a company based in Paris and New York"
QUESTION, CONTEXT = "Who was Jim Henson?", "Jim Henson was a nice puppet"
PROMPT = "In Italy, pizza served in formal settings, such as at a restaurant, is presented unsliced."
CHOICES = ("It is eaten with a fork and a knife.", "It is eaten while held in the hand.")
MASKED = "The capital of France is <mask>."

# task -> (shipped data set, steps, learning rate): enough for the tiny model to learn each toy task.
FINE_TUNING = {
    "sequence-classification": ("sentiment", 150, 3e-3),
    "token-classification": ("ner", 150, 3e-3),
    "question-answering": ("qa", 250, 3e-3),
    "multiple-choice": ("choice", 100, 3e-3),
}
MLM_STEPS = 300


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="pre-train and fine-tune a tiny model on the shipped data, offline, and run every task",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  roberta-prelayernorm demo --output demo-output",
    )
    parser.add_argument("--output", default=None, help="folder for the models and metrics (default: a temp folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what an earlier run left in --output (a folder that is not empty is refused "
                             "without it, as train refuses a finished run)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every training length by this (0.1 for a 20-second smoke run)")
    parser.set_defaults(func=run)


def shipped(name: str) -> str:
    return str(resources.files("roberta_prelayernorm") / "data" / name)


def run(args) -> int:
    import torch

    import roberta_prelayernorm as rp
    from .tokenizer import train_byte_level_bpe
    from .training import Trainer, TrainingConfig
    from .training.corpus import is_corpus, write_corpus

    if args.scale <= 0:
        raise SettingError(f"--scale must be > 0, got {args.scale}")
    held = sorted(os.listdir(args.output)) if args.output and os.path.isdir(args.output) else []
    if held and not args.overwrite:  # before any work, as train refuses a finished run
        raise SettingError(f"--output {args.output} is not empty (it holds {', '.join(held[:5])}); pass --overwrite "
                           "to replace an earlier demo run there, or choose a new folder")
    # Tiny models run faster on one thread than on several (thread hand-offs cost more than the matmuls).
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    output = args.output or tempfile.mkdtemp(prefix="roberta-prelayernorm-demo-")
    os.makedirs(output, exist_ok=True)
    started = time.time()

    with open(shipped("corpus.jsonl"), encoding="utf-8") as f:
        lines = f.readlines()
    corpus_train = os.path.join(output, "corpus_train.jsonl")
    corpus_validation = os.path.join(output, "corpus_validation.jsonl")
    for path, part in ((corpus_train, lines[:-100]), (corpus_validation, lines[-100:])):
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(part)
    print(f"1. Training a 2,000-token byte-level BPE vocabulary on the shipped corpus ({len(lines) - 100} texts)...")
    tokenizer = train_byte_level_bpe([json.loads(line)["text"] for line in lines[:-100]], vocab_size=2000)
    config = rp.RobertaPreLayerNormConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5)
    model = rp.RobertaPreLayerNormForMaskedLM(config)
    size = model.num_parameters()
    print(f"   tiny model: hidden 64, 2 layers, 4 heads, {size:,} parameters\n")

    def steps(n: int) -> int:
        return max(2, int(n * args.scale))

    # --overwrite: running the demo again into the same --output replaces its earlier runs.
    common = dict(batch_size=16, max_length=128, warmup_ratio=0.06, weight_decay=0.01, seed=args.seed,
                  progress=True, log_every=25, overwrite=args.overwrite)
    print(f"2. Masked-LM pre-training ({steps(MLM_STEPS)} steps, 15% masking, 80/10/10) on the corpus tokenized "
          "into a memory-mapped folder (as `tokenize-corpus` writes it), with sparse prediction (the LM head at "
          "the masked positions only)...")
    corpus_dir = os.path.join(output, "corpus")
    if not is_corpus(corpus_dir):
        write_corpus([corpus_train], tokenizer, corpus_dir, progress=False)
    mlm_dir = os.path.join(output, "masked-lm")
    trainer = Trainer(TrainingConfig(task="masked-lm", output_dir=mlm_dir, train=corpus_dir,
                                     validation=corpus_validation, max_steps=steps(MLM_STEPS), learning_rate=2e-3,
                                     eval_every=steps(MLM_STEPS), save_every=steps(MLM_STEPS), **common),
                      model=model, tokenizer=tokenizer)
    before = trainer.evaluate()
    results = {"masked-lm": (trainer.train(), before)}
    pretrained = os.path.join(mlm_dir, "last")

    for number, (task, (name, n, lr)) in enumerate(FINE_TUNING.items(), 3):
        print(f"\n{number}. Fine-tuning {task} on {name}_train.jsonl ({steps(n)} steps)...")
        trainer = Trainer(TrainingConfig(task=task, model=pretrained, output_dir=os.path.join(output, task),
                                         train=shipped(f"{name}_train.jsonl"),
                                         validation=shipped(f"{name}_validation.jsonl"), max_steps=steps(n),
                                         learning_rate=lr, eval_every=steps(n), save_every=steps(n), **common))
        before = trainer.evaluate()
        results[task] = (trainer.train(), before)

    print("\n7. The trained models on the documentation's example inputs:")
    show_predictions(output)

    print(f"\nValidation metrics on the shipped task sets (before training -> after), {time.time() - started:.0f} s "
          "in all:")
    print(f"  {'task':<26}{'metric':<13}{'before':>9}{'after':>9}")
    for task, (after, before) in results.items():
        for metric in ("loss", "perplexity", "accuracy", "macro_f1", "f1", "exact_match"):
            if metric in after:
                print(f"  {task:<26}{metric:<13}{before[metric]:>9.3f}{after[metric]:>9.3f}")
    print(f"\nSaved under {output}: each task's best/ and last/ model (with tokenizer), metrics.jsonl, curves.png.")
    print(
        f"\nThis is a demonstration: a {size / 1e6:.1f}M-parameter model trained for minutes on templated toy data "
        "learns the toy patterns, not English; its predictions on other text mean little.\nFor real predictions, "
        "use the published checkpoint (needs network once):\n"
        f"  python -c \"from roberta_prelayernorm import AutoTokenizer, AutoModelForMaskedLM; "
        f"t = AutoTokenizer.from_pretrained('{REAL_CHECKPOINT}'); "
        f"m = AutoModelForMaskedLM.from_pretrained('{REAL_CHECKPOINT}')\""
    )
    print(f"\nServe the classifier over HTTP (try it at http://127.0.0.1:8080/):\n  roberta-prelayernorm serve --model "
          f"'{os.path.join(output, 'sequence-classification', 'best')}'")
    return 0


def show_predictions(output: str) -> None:
    """Each fine-tuned model on the example inputs: through the task pipelines."""
    from .pipelines import pipeline

    def best(task):
        return os.path.join(output, task, "best")

    classify = pipeline("text-classification", model=best("sequence-classification"))
    print(f"   {SENTENCE!r} -> {classify(SENTENCE)}")
    ner = pipeline("ner", model=best("token-classification"), aggregation_strategy="simple")
    entities = [(e["word"].strip(), e["entity_group"]) for e in ner(NER_TEXT)]
    print(f"   {NER_TEXT!r} -> {entities}")
    qa = pipeline("question-answering", model=best("question-answering"))
    answer = qa(question=QUESTION, context=CONTEXT)
    print(f"   Q: {QUESTION} C: {CONTEXT!r} -> {answer['answer']!r} (score {answer['score']:.3f})")
    choose = pipeline("multiple-choice", model=best("multiple-choice"))
    ranked = choose(prompt=PROMPT, choices=list(CHOICES))
    print(f"   {PROMPT!r}\n     -> {ranked[0]['choice']!r} (score {ranked[0]['score']:.3f})")
    fill = pipeline("fill-mask", model=os.path.join(output, "masked-lm", "last"), top_k=3)
    print(f"   {MASKED!r} -> {[p['token_str'].strip() for p in fill(MASKED)]}")
