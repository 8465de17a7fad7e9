"""training/cli.py: the train / evaluate commands: end to end, DDP, one-line errors, the same task options.

End to end in subprocesses, 2-process DDP (gloo) against 1 process.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.training import Trainer
from training_utils import config, data, head, make_tiny_model, run_cli

# The end-to-end tests are `slow` (subprocesses and DDP): `make test-fast` leaves them out.

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def cli(*args, launcher=(sys.executable, "-m", "roberta_prelayernorm")):
    result = subprocess.run([*launcher, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_train_then_evaluate(tmp_path):
    model = make_tiny_model(str(tmp_path / "tiny"))
    train = head(data("ner_train.jsonl"), 32, tmp_path / "train.jsonl")
    out = tmp_path / "out"
    result = cli("train", "--task", "token-classification", "--model", model, "--train", train, "--validation",
                 train, "--output", out, "--max-steps", 6, "--batch-size", 8, "--learning-rate", 5e-3,
                 "--max-length", 64, "--save-every", 3, "--eval-every", 3, "--log-every", 2, "--no-progress")
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(final) >= {"loss", "precision", "recall", "f1", "accuracy"}
    assert {"best", "last", "checkpoints", "metrics.jsonl", "curves.png"} <= set(os.listdir(out))
    assert os.listdir(out / "checkpoints") == ["step-00000003"]
    entries = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(e["split"], e["step"]) for e in entries] == [("train", 2), ("validation", 3), ("train", 4),
                                                          ("train", 6), ("validation", 6)]
    config = json.loads((out / "last" / "config.json").read_text())
    assert config["architectures"] == ["RobertaPreLayerNormForTokenClassification"] and config["id2label"]["0"] == "O"

    result = cli("evaluate", "--task", "token-classification", "--model", out / "last", "--data", train,
                 "--max-length", 64, "--batch-size", 16, "--output", tmp_path / "eval.json")
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated == pytest.approx({k: final[k] for k in evaluated}, rel=1e-5)
    help_text = cli("train", "--help").stdout
    assert "examples:" in help_text and "torchrun" in help_text and '"tokens": [str, ...]' in help_text


@pytest.mark.slow
def test_ddp_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    model = make_tiny_model(str(tmp_path / "tiny"), dropout=0.0)  # dropout draws would differ between processes
    train = head(data("sentiment_train.jsonl"), 48, tmp_path / "train.jsonl")
    common = ["train", "--task", "sequence-classification", "--model", model, "--train", train, "--validation", train,
              "--max-steps", 4, "--learning-rate", 5e-3, "--max-length", 64, "--no-progress", "--grad-accum", 2,
              "--eval-every", 4]
    single = json.loads(cli(*common, "--output", tmp_path / "one", "--batch-size", 4).stdout.splitlines()[-1])
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "roberta_prelayernorm")
    double = json.loads(cli(*common, "--output", tmp_path / "two", "--batch-size", 2, launcher=launcher)
                        .stdout.splitlines()[-1])
    assert double == pytest.approx(single, rel=1e-4, abs=1e-6)
    one = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "one" / "last").state_dict()
    two = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "two" / "last").state_dict()
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=1e-4, msg=name)
    trains = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
               if '"train"' in line] for run in ("one", "two")]
    assert [e["loss"] for e in trains[0]] == pytest.approx([e["loss"] for e in trains[1]], rel=1e-4)


@pytest.mark.slow
def test_ddp_on_the_memory_mapped_corpus_equals_ddp_on_json_lines(tmp_path):
    """torchrun ranks read disjoint blocks of a tokenize-corpus folder: the run equals one on the JSON Lines."""
    model = make_tiny_model(str(tmp_path / "tiny"), dropout=0.0)
    train = head(data("corpus.jsonl"), 48, tmp_path / "train.jsonl")
    cli("tokenize-corpus", train, "--tokenizer", model, "--output", tmp_path / "corpus", "--no-progress")
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "roberta_prelayernorm")
    common = ["train", "--task", "masked-lm", "--model", model, "--max-steps", 4, "--learning-rate", 5e-3,
              "--max-length", 64, "--no-progress", "--batch-size", 2, "--grad-accum", 2, "--log-every", 2]
    for name, source in (("jsonl", train), ("mmap", tmp_path / "corpus")):
        cli(*common, "--train", source, "--output", tmp_path / name, launcher=launcher)
    a = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "jsonl" / "last").state_dict()
    b = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "mmap" / "last").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("jsonl", "mmap")]
    assert losses[0] == losses[1] and len(losses[0]) == 2


@pytest.mark.usefixtures("one_thread")
def test_train_and_evaluate_errors_are_one_line(tmp_path, tiny):
    code, _, err = run_cli("train", "--task", "sequence-classification", "--model", tiny, "--train",
                           tmp_path / "missing.jsonl", "--output", tmp_path / "out")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "missing.jsonl" in err
    code, _, err = run_cli("evaluate", "--task", "sequence-classification", "--model", tiny, "--data",
                           data("sentiment_validation.jsonl"), "--batch-size", "0")
    assert code == 2 and "batch_size=0" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli("train", "--task", "sequence-classification", "--model", tiny, "--train",
                           data("sentiment_train.jsonl"), "--output", tmp_path / "o", "--epochs", "inf")
    assert code == 2 and "epochs=inf" in err, err


@pytest.mark.usefixtures("one_thread")
def test_evaluate_takes_the_options_train_takes(tmp_path, tiny):
    """A tagger trained with label_all_pieces is evaluated with it (the loss counts every piece's label), from
    Python and on the command line (evaluate has every task option train has)."""
    import argparse

    from roberta_prelayernorm.training import evaluate
    from roberta_prelayernorm.training.cli import add_commands

    trainer = Trainer(config(tmp_path, "token-classification", tiny, max_steps=3, label_all_pieces=True))
    results = trainer.train()
    kwargs = dict(max_length=64, batch_size=16)
    again = evaluate("token-classification", str(tmp_path / "out" / "last"), trainer.config.validation,
                     label_all_pieces=True, **kwargs)
    assert again == pytest.approx(results, rel=1e-5)
    first_pieces = evaluate("token-classification", str(tmp_path / "out" / "last"), trainer.config.validation,
                            **kwargs)
    assert first_pieces["loss"] != pytest.approx(results["loss"], rel=1e-5)  # the option changes what is scored
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--task", "token-classification", "--model", "m", "--data", "d",
                              "--label-all-pieces", "--stride", "8", "--compile"])
    assert args.label_all_pieces and args.stride == 8 and args.compile
