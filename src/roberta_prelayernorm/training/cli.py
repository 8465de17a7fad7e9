"""`roberta-prelayernorm train` and `roberta-prelayernorm evaluate`: the command line over training.Trainer."""

from __future__ import annotations

import argparse
import os

from ..jsonout import dumps
from ..tasks import FORMATS
from .config import TASK_OPTIONS, DataSettings, RunSettings, TrainingConfig, add_arguments, given_settings, sections
from .recipes import RECIPES

TRAIN_EXAMPLES = """examples:
  # fine-tune a classifier (labels: class names, indices, lists for multi-label, or floats for regression)
  roberta-prelayernorm train --task sequence-classification --model andreasmadsen/efficient_mlm_m0.40 \\
      --train train.jsonl --validation dev.jsonl --output out/sst2 --epochs 3 --learning-rate 2e-5

  # continue masked-LM pre-training with 40% masking, every chosen token replaced by <mask>
  roberta-prelayernorm train --task masked-lm --model andreasmadsen/efficient_mlm_m0.40 --train corpus.jsonl \\
      --output out/mlm --max-steps 10000 --mlm-probability 0.4 --mask-mode mask --precision bf16

  # pre-train from scratch with the efficient_mlm recipe on a corpus written by tokenize-corpus
  roberta-prelayernorm train --task masked-lm --model CONFIG_DIR --from-scratch --train corpus/ --output out/pt \\
      --recipe efficient-mlm --batch-size 64

  # pick up a killed run where its last checkpoint left it
  roberta-prelayernorm train ...same options... --resume

  # two GPUs (or CPU processes, with gloo) on one machine
  torchrun --nproc-per-node 2 -m roberta_prelayernorm train ...

output: DIR/metrics.jsonl, DIR/curves.png, DIR/best/ and DIR/last/ (model, tokenizer, config), the best
(else the last) model at the top of DIR (from_pretrained(DIR) loads it), DIR/checkpoints/step-N/ (for
--resume). One run at a time per DIR; a finished run is replaced only with --overwrite.
"""


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune a model on a task, or continue masked-LM pre-training",
        description="Train a model on local data; one process, or many under torchrun.\n\n" + FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=TRAIN_EXAMPLES,
    )
    for title, section in sections():
        group = parser.add_argument_group(title, section.__doc__ if section not in TASK_OPTIONS else None)
        add_arguments(group, section)
        if section is RunSettings:
            group.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                               help="continue from the latest checkpoint in --output, or from DIR")
            group.add_argument("--recipe", choices=RECIPES,
                               help="a named preset of the options below; options given explicitly win "
                                    "(efficient-mlm: the efficient_mlm checkpoints' pre-training, see the README)")
    parser.set_defaults(func=run_train)

    parser = subparsers.add_parser(
        "evaluate", help="compute a saved model's metrics on a data file",
        description="Evaluate a saved model (with its tokenizer) on local data and print the metrics as JSON.\n\n"
                    + FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  roberta-prelayernorm evaluate --task sequence-classification --model out/sst2/best "
               "--data dev.jsonl",
    )
    add_arguments(parser, RunSettings, ["task"])
    parser.add_argument("--model", required=True, help="folder (e.g. OUTPUT/best) or hub id")
    parser.add_argument("--data", required=True, help=".jsonl, .csv, or a datasets folder")
    add_arguments(parser, DataSettings, ["batch_size", "max_length"],
                  batch_size={"default": 32, "help": "examples per batch"})
    for title, section in sections():
        if section in TASK_OPTIONS:
            add_arguments(parser.add_argument_group(title), section)
    add_arguments(parser, RunSettings, ["precision", "device", "compile"],
                  compile={"help": "torch.compile the model (pays for full batches)"})
    parser.add_argument("--output", help="also write the metrics to this JSON file")
    parser.set_defaults(func=run_evaluate)


def run_train(args) -> int:
    import torch

    from .recipes import recipe_settings
    from .checkpoints import check_output_dir
    from .trainer import Trainer

    given = given_settings(args)
    if args.recipe:
        cuda = torch.cuda.is_available() and not given.get("device", "").startswith("cpu")
        given = recipe_settings(args.recipe, args.task, given, given.get("batch_size", DataSettings.batch_size),
                                int(os.environ.get("WORLD_SIZE", "1")), cuda)
    config = TrainingConfig(**given)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the job
        check_output_dir(config.output_dir, resume=args.resume, overwrite=config.overwrite)
    try:
        trainer = Trainer(config)
        results = trainer.train(resume=args.resume)
        if trainer.dist.is_main:
            print(dumps(results), flush=True)
    finally:
        # A process group left to the interpreter's exit can abort it (gloo's threads outlive it) while the
        # other ranks still talk to the rendezvous: every rank leaves the group first, together.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def run_evaluate(args) -> int:
    from ..files import atomic_write_text, check_output
    from .trainer import evaluate

    if args.output:
        check_output(args.output, "--output")
    results = evaluate(data=args.data, **given_settings(args))  # evaluate's own defaults where a flag is left off
    text = dumps(results, indent=2)
    print(text)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    return 0
