"""`roberta-prelayernorm train` and `roberta-prelayernorm evaluate`: the command line over training.Trainer."""

from __future__ import annotations

import argparse
import json
import os

from ..tasks import FORMATS, TASKS
from .recipes import RECIPES

RECIPE_OPTIONS = ("epochs", "max_steps", "learning_rate", "grad_accum", "warmup_ratio", "weight_decay", "adam_beta1", "adam_beta2",
                  "adam_epsilon", "max_grad_norm", "max_length", "mlm_probability", "mask_mode", "precision")

TRAIN_EXAMPLES = """examples:
  # fine-tune a classifier (labels: class names, indices, lists for multi-label, or floats for regression)
  roberta-prelayernorm train --task sequence-classification --model andreasmadsen/efficient_mlm_m0.40 \\
      --train train.jsonl --validation dev.jsonl --output out/sst2 --epochs 3 --learning-rate 2e-5

  # continue masked-LM pre-training with 40% masking, every chosen token replaced by <mask>
  roberta-prelayernorm train --task masked-lm --model andreasmadsen/efficient_mlm_m0.40 --train corpus.jsonl \\
      --output out/mlm --max-steps 10000 --mlm-probability 0.4 --mask-mode mask --precision bf16

  # pre-train from scratch with the efficient_mlm recipe on a corpus written by tokenize-corpus
  roberta-prelayernorm train --task masked-lm --model CONFIG_DIR --from-scratch --train corpus/ --output out/pt \
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
    parser.add_argument("--task", required=True, choices=tuple(TASKS))
    parser.add_argument("--model", required=True, help="checkpoint folder or hub id to start from")
    parser.add_argument("--train", required=True,
                        help="training data: .jsonl, .csv, a datasets folder, or (masked-lm) a tokenize-corpus folder")
    parser.add_argument("--validation", help="validation data, same format (metrics and the best model need it)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--tokenizer", help="tokenizer folder or hub id (default: the model's)")
    parser.add_argument("--from-scratch", action="store_true", help="fresh weights, using only --model's config")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=3.0, help="passes over the training data (default 3)")
    length.add_argument("--max-steps", type=int, help="optimizer steps to train for (instead of --epochs)")
    parser.add_argument("--learning-rate", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per process per micro-batch (16)")
    parser.add_argument("--eval-batch-size", type=int, help="default: 2 x --batch-size")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    warmup = parser.add_mutually_exclusive_group()
    warmup.add_argument("--warmup-ratio", type=float, default=0.0, help="fraction of steps warming up (default 0)")
    warmup.add_argument("--warmup-steps", type=int, help="steps of linear warm-up (instead of --warmup-ratio)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    parser.add_argument("--adam-beta1", type=float, default=0.9, help="AdamW beta1 (default 0.9)")
    parser.add_argument("--adam-beta2", type=float, default=0.999, help="AdamW beta2 (default 0.999)")
    parser.add_argument("--adam-epsilon", type=float, default=1e-8, help="AdamW epsilon (default 1e-8)")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm; 0 turns it off")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per sequence / masked-LM block (128)")
    parser.add_argument("--stride", type=int, default=32, help="question-answering: window overlap in tokens (32)")
    parser.add_argument("--label-all-pieces", action="store_true",
                        help="token-classification: label every sub-word piece, not only each word's first")
    parser.add_argument("--mlm-probability", type=float, default=0.15, help="masked-lm: masking rate (0.15)")
    parser.add_argument("--mask-mode", choices=("80-10-10", "mask"), default="80-10-10",
                        help="masked-lm: chosen tokens become <mask>/random/kept 80/10/10, or all <mask>")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="mixed precision for forward/backward (weights stay fp32)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for activation memory")
    parser.add_argument("--eval-every", type=int, help="evaluate every N steps (default: every epoch)")
    parser.add_argument("--save-every", type=int, help="checkpoint every N steps (default: every epoch)")
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept (default 2)")
    parser.add_argument("--log-every", type=int, default=10, help="log the training loss every N steps (10)")
    parser.add_argument("--seed", type=int, default=42, help="seed for the new head, data order and masking")
    parser.add_argument("--on-nonfinite", choices=("stop", "skip"), default="stop",
                        help="on a NaN/inf loss: stop with an error naming the step and batch (default), or skip "
                             "that step's update")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in --output (its best/, last/ and metrics); else refused")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="DIR",
                        help="continue from the latest checkpoint in --output, or from DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda:LOCAL_RANK if available)")
    parser.add_argument("--peak-flops", type=float,
                        help="the GPU's peak FLOP/s, for the MFU in the log (default: a table of bf16 peaks by name)")
    parser.add_argument("--recipe", choices=RECIPES,
                        help="a named preset of the options above; options given explicitly win (efficient-mlm: "
                             "the efficient_mlm checkpoints' pre-training, see the README)")
    # Recipe options default to unset, so a recipe can tell them from the user's; TrainingConfig's defaults
    # (the ones the help texts state) apply where neither sets them.
    parser.set_defaults(func=run_train, **{name: None for name in RECIPE_OPTIONS})

    parser = subparsers.add_parser(
        "evaluate", help="compute a saved model's metrics on a data file",
        description="Evaluate a saved model (with its tokenizer) on local data and print the metrics as JSON.\n\n"
                    + FORMATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  roberta-prelayernorm evaluate --task sequence-classification --model out/sst2/best "
               "--data dev.jsonl",
    )
    parser.add_argument("--task", required=True, choices=tuple(TASKS))
    parser.add_argument("--model", required=True, help="folder (e.g. OUTPUT/best) or hub id")
    parser.add_argument("--data", required=True, help=".jsonl, .csv, or a datasets folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--mlm-probability", type=float, default=0.15)
    parser.add_argument("--mask-mode", choices=("80-10-10", "mask"), default="80-10-10")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--device")
    parser.add_argument("--output", help="also write the metrics to this JSON file")
    parser.set_defaults(func=run_evaluate)


def run_train(args) -> int:
    import torch

    from .recipes import recipe_settings
    from .trainer import Trainer, TrainingConfig, check_output_dir

    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 speaks for the job
        check_output_dir(args.output, resume=args.resume, overwrite=args.overwrite)

    given = {name: getattr(args, name) for name in RECIPE_OPTIONS if getattr(args, name) is not None}
    if args.recipe:
        cuda = torch.cuda.is_available() and not (args.device or "").startswith("cpu")
        given = recipe_settings(args.recipe, args.task, given, args.batch_size, int(os.environ.get("WORLD_SIZE", "1")),
                                cuda)
    config = TrainingConfig(
        task=args.task, output_dir=args.output, model=args.model, train=args.train, validation=args.validation,
        tokenizer=args.tokenizer, from_scratch=args.from_scratch,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, warmup_steps=args.warmup_steps,
        stride=args.stride, label_all_pieces=args.label_all_pieces,
        gradient_checkpointing=args.gradient_checkpointing,
        eval_every=args.eval_every, save_every=args.save_every, keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every, seed=args.seed, on_nonfinite=args.on_nonfinite, overwrite=args.overwrite,
        progress=not args.no_progress, device=args.device, peak_flops=args.peak_flops, **given,
    )
    trainer = Trainer(config)
    results = trainer.train(resume=args.resume)
    if trainer.dist.is_main:
        print(json.dumps(results))
    return 0


def run_evaluate(args) -> int:
    from ..files import atomic_write_text, check_output
    from .trainer import evaluate

    if args.output:
        check_output(args.output, "--output")
    results = evaluate(args.task, args.model, args.data, batch_size=args.batch_size, max_length=args.max_length,
                       stride=args.stride, precision=args.precision, device=args.device,
                       **({"mlm_probability": args.mlm_probability, "mask_mode": args.mask_mode}
                          if args.task == "masked-lm" else {}))
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        atomic_write_text(args.output, text + "\n")
    return 0
