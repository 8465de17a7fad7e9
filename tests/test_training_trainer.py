"""Training: every task learns on tiny data, bad records are named, non-finite losses are caught, saved models
load here and in transformers, and a SIGKILLed run resumes to the same weights as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.training import DataError, NonFiniteLossError, Trainer, TrainingConfig, read_records
from training_utils import data, head, write_jsonl

FILES = {"sequence-classification": "sentiment", "token-classification": "ner", "question-answering": "qa",
         "multiple-choice": "choice", "masked-lm": "corpus"}


pytestmark = pytest.mark.usefixtures("one_thread")


def config(tmp_path, task, tiny, n=48, **overrides):
    name = FILES[task]
    train = head(data(f"{name}_train.jsonl" if task != "masked-lm" else "corpus.jsonl"), n, tmp_path / "train.jsonl")
    values = dict(task=task, model=tiny, train=str(train), validation=str(train), output_dir=str(tmp_path / "out"),
                  max_steps=24, batch_size=8, learning_rate=2e-3, max_length=64, stride=16, progress=False,
                  log_every=4, eval_every=100)
    values.update(overrides)
    return TrainingConfig(**values)


@pytest.mark.parametrize("task, learning_rate, steps", [
    ("sequence-classification", 1e-2, 40), ("token-classification", 5e-3, 24), ("question-answering", 5e-3, 24),
    ("multiple-choice", 5e-3, 24), ("masked-lm", 5e-3, 24)])
def test_every_task_learns(tmp_path, tiny, task, learning_rate, steps):
    trainer = Trainer(config(tmp_path, task, tiny, learning_rate=learning_rate, max_steps=steps))
    before = trainer.evaluate()["loss"]
    results = trainer.train()
    assert results["loss"] < 0.85 * before, (before, results)
    out = tmp_path / "out"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines if e["split"] == "train"] == list(range(4, steps + 1, 4))
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    model = getattr(rp, trainer.task.model_class).from_pretrained(out / "best")
    tokenizer = rp.AutoTokenizer.from_pretrained(out / "last")
    assert len(tokenizer) <= model.config.vocab_size
    if task in ("sequence-classification", "token-classification"):
        labels = set(model.config.id2label.values())
        assert labels == ({"negative", "positive"} if task == "sequence-classification" else
                          {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"})


def test_saved_model_loads_in_transformers(tmp_path, tiny):
    transformers = pytest.importorskip("transformers")
    trainer = Trainer(config(tmp_path, "token-classification", tiny, max_steps=4))
    trainer.train()
    ours = rp.RobertaPreLayerNormForTokenClassification.from_pretrained(tmp_path / "out" / "last")
    theirs = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "out" / "last")
    assert theirs.config.id2label == ours.config.id2label
    ids = torch.tensor([[0, 50, 60, 70, 2]])
    torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-5)


def test_label_kinds_and_csv(tmp_path, tiny):
    path = tmp_path / "reg.csv"
    path.write_text('text,text_pair,label\nA good dog,It is cute,4.5\n"A bad, rude cat",,1\nfine,ok,3.25\n')
    records = read_records(path)
    assert records[1].fields == {"text": "A bad, rude cat", "text_pair": None, "label": 1}
    assert str(records[1].where) == f"{path}, line 3"
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=str(path), validation=str(path),
                             max_steps=2))
    assert trainer.task.kind == "regression" and trainer.model.config.problem_type == "regression"
    assert set(trainer.train()) >= {"loss", "pearson", "spearman"}
    multi = write_jsonl(tmp_path / "multi.jsonl", [{"text": "a", "label": ["x", "y"]}, {"text": "b", "label": ["y"]},
                                                   {"text": "c", "label": []}])
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=multi, validation=multi, max_steps=2,
                             output_dir=str(tmp_path / "multi")))
    assert trainer.model.config.problem_type == "multi_label_classification"
    assert trainer.train_features[0]["labels"] == [1.0, 1.0]
    assert set(trainer.train()) >= {"accuracy", "macro_f1"}


@pytest.mark.parametrize("task, lines, field", [
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": "c"}'], "label"),
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": 5, "label": "x"}'], "text"),
    ("sequence-classification", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}', '{"text": "b", "label": 1}'], "label"),
    ("token-classification", ['{"tokens": ["a"], "tags": ["O"]}', '{"tokens": ["a"], "tags": ["O"]}', '{"tokens": ["a", "b"], "tags": ["O"]}'], "tags"),
    ("question-answering", ['{"question": "q?", "context": "abc", "answers": {"text": ["b"], "answer_start": [1]}}'] * 2 +
     ['{"question": "q?", "context": "abc", "answers": {"text": ["b"], "answer_start": [2]}}'], "answers.answer_start"),
    ("multiple-choice", ['{"prompt": "p", "choices": ["a", "b"], "label": 0}'] * 2 + ['{"prompt": "p", "choices": ["a", "b"], "label": 2}'], "label"),
    ("masked-lm", ['{"text": "a"}', '{"text": "b"}', '{"text": "c"'], "(record)"),
])
def test_bad_record_names_file_line_and_field(tmp_path, tiny, task, lines, field):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        Trainer(config(tmp_path, task, tiny, train=path, validation=None))
    assert err.value.field == field and err.value.where.line == 3
    assert f"{path}, line 3: field {field!r}" in str(err.value)


def test_bad_settings_are_named(tmp_path, tiny):
    with pytest.raises(ValueError, match="precision='fp8' is not allowed: one of fp32, bf16, fp16"):
        Trainer(config(tmp_path, "masked-lm", tiny, precision="fp8"))
    with pytest.raises(ValueError, match="warmup_ratio=1.5 is not allowed: a fraction in"):
        Trainer(config(tmp_path, "masked-lm", tiny, warmup_ratio=1.5))


@pytest.mark.parametrize("read_at_the_log", [False, True])
@pytest.mark.parametrize("action", ["stop", "skip"])
def test_non_finite_loss(tmp_path, tiny, action, read_at_the_log, monkeypatch):
    """A NaN at step 3 stops the run naming step 3, or is skipped with the weights left finite. With an optimizer
    that skips a bad step itself (the fused AdamW's found_inf, as on CUDA; its CPU kernel here), the host reads
    the losses only when the log needs them, and still names the step."""
    import math

    import roberta_prelayernorm.training.state as state
    from roberta_prelayernorm.training.losses import StepLosses

    reads = []
    if read_at_the_log:
        monkeypatch.setattr(state, "fused_on", lambda params: True)
        settle = StepLosses.settle
        monkeypatch.setattr(StepLosses, "settle", lambda self, s: reads.append(len(self.pending)) or settle(self, s))
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=8, log_every=4,
                             on_nonfinite=action))
    calls = []

    def poison(module, inputs, output):  # the third forward pass (step 3) gives NaN logits
        calls.append(1)
        return output * float("nan") if len(calls) == 3 else output

    trainer.model.classifier.register_forward_hook(poison)
    if action == "stop":
        with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 \(epoch 0, batch 0"):
            trainer.train()
        assert reads == ([4] if read_at_the_log else [])
        return
    trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    losses = [entry["loss"] for entry in trainer.history if entry["split"] == "train"]
    assert math.isnan(losses[0]) and math.isfinite(losses[1])
    # steps 1-4 read at the first log, 5-6 for the checkpoint at the epoch's end (6 steps), 7-8 at the last log
    assert reads == ([4, 2, 2] if read_at_the_log else [])


def poison_from(trainer, first: int, last: int = 10**9) -> None:
    """Make forward passes first..last (1-based; one per step here) give NaN logits."""
    calls = []

    def poison(module, inputs, output):
        calls.append(1)
        return output * float("nan") if first <= len(calls) <= last else output

    trainer.model.classifier.register_forward_hook(poison)


def test_skipped_steps_are_counted_and_reported_without_progress(tmp_path, tiny, caplog):
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=8, log_every=4,
                             eval_every=None, validation=None, on_nonfinite="skip"))
    poison_from(trainer, 3, 4)
    with caplog.at_level("WARNING", logger="roberta_prelayernorm.training"):
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if r.name == "roberta_prelayernorm.training"]
    assert "at step 3" in warnings[0] and "(1 skipped so far)" in warnings[0]
    assert "at step 4" in warnings[1] and "(2 skipped so far)" in warnings[1]
    assert warnings[2] == "2 of 8 steps were skipped for a non-finite loss (on_nonfinite='skip')"
    def strict(word):
        raise ValueError(f"{word} is not JSON")

    lines = [json.loads(line, parse_constant=strict) for line in open(tmp_path / "out" / "metrics.jsonl")]
    assert [(e["step"], e["skipped_steps"]) for e in lines if e["split"] == "train"] == [(4, 2), (8, 2)]
    assert lines[0]["loss"] is None  # the mean of steps 1-4, two of them NaN: null in strict JSON


def test_a_run_skipping_more_than_its_share_stops(tmp_path, tiny, caplog):
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=40, log_every=4,
                             eval_every=None, validation=None, on_nonfinite="skip", max_skipped_share=0.25))
    poison_from(trainer, 5)
    with caplog.at_level("WARNING", logger="roberta_prelayernorm.training"), \
            pytest.raises(NonFiniteLossError, match=r"11 steps skipped for a non-finite loss, more than the 10 that "
                                                     r"max_skipped_share allows \(the last: non-finite loss \(nan\) at "
                                                     r"step 15"):
        trainer.train()
    warnings = [r.getMessage() for r in caplog.records if r.name == "roberta_prelayernorm.training"]
    assert len(warnings) == 10 and warnings[9].endswith("(10 skipped so far; further skips are reported every 100th)")
    with pytest.raises(ValueError, match="max_skipped_share=1.5 is not allowed"):
        Trainer(config(tmp_path, "sequence-classification", tiny, max_skipped_share=1.5))
    with pytest.raises(ValueError, match=r"seed=18446744073709551616 is not allowed: an int in \[0, 2\*\*64\)"):
        Trainer(config(tmp_path, "sequence-classification", tiny, seed=2**64))


def test_bf16_and_gradient_checkpointing_run_on_cpu(tmp_path, tiny):
    trainer = Trainer(config(tmp_path, "masked-lm", tiny, max_steps=2, precision="bf16", gradient_checkpointing=True))
    assert trainer.model.is_gradient_checkpointing
    assert torch.isfinite(torch.tensor(trainer.train()["loss"]))


KILLED_RUN = textwrap.dedent("""
    import sys, time, torch
    from roberta_prelayernorm.training import Trainer, TrainingConfig
    real_save = torch.save

    def save(obj, path, *args, **kwargs):  # hang half way through writing the step-6 checkpoint
        if isinstance(obj, dict) and obj.get("step") == 6:
            with open(path, "wb") as f:
                f.write(b"half")
            print("SAVING", flush=True)
            time.sleep(600)
        return real_save(obj, path, *args, **kwargs)

    torch.save = save
    torch.set_num_threads(1)
    Trainer(TrainingConfig(**__import__("json").loads(sys.argv[1]))).train()
""")


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(tmp_path, tiny):
    def run_config(name):
        return config(tmp_path, "masked-lm", tiny, max_steps=8, save_every=2, eval_every=4, warmup_steps=2,
                      output_dir=str(tmp_path / name))

    straight = Trainer(run_config("straight"))
    straight.train()

    killed = run_config("killed")
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, json.dumps(killed.__dict__)],
                               stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.stdout.readline().strip() == b"SAVING"
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = os.listdir(tmp_path / "killed" / "checkpoints")
    assert sorted(n for n in checkpoints if n.startswith("step-")) == ["step-00000002", "step-00000004"]
    assert any(n.startswith(".tmp-step-00000006") for n in checkpoints)  # the half-written one, never read
    rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tmp_path / "killed" / "checkpoints" / "step-00000004")

    resumed = Trainer(run_config("killed"))
    resumed.train(resume=True)
    assert not any(n.startswith(".tmp") for n in os.listdir(tmp_path / "killed" / "checkpoints"))
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in
                     (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]


def test_a_dataset_saved_by_datasets_trains(tmp_path, tiny):
    """`datasets` is optional; when installed, --train takes a folder written by save_to_disk."""
    datasets = pytest.importorskip("datasets")
    records = read_records(head(data("sentiment_train.jsonl"), 24, tmp_path / "train.jsonl"))
    folder = tmp_path / "saved"
    datasets.Dataset.from_list([r.fields for r in records]).save_to_disk(str(folder))
    from_disk = read_records(str(folder))
    assert [r.fields for r in from_disk] == [r.fields for r in records]
    assert str(from_disk[3].where).endswith("row 3")  # the dataset index
    trainer = Trainer(config(tmp_path, "sequence-classification", tiny, train=str(folder), max_steps=2))
    assert "loss" in trainer.train()


@pytest.mark.parametrize("head", ["ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                                  "ForQuestionAnswering", "ForMultipleChoice", "ForCausalLM"])
def test_weight_decay_goes_where_transformers_module_type_rule_puts_it(head):
    """The decayed parameters are those transformers' get_parameter_names keeps outside LayerNorm modules, less
    biases (its Trainer's rule by module type: lm_head.layer_norm is not decayed, though its name has no
    "LayerNorm"). transformers 4.57's Trainer adds name patterns, one of which ("layernorm") matches this
    model's prefix `roberta_prelayernorm.`: it decays no encoder weight at all. That is not copied."""
    import transformers
    from transformers.trainer_pt_utils import get_parameter_names

    from parity import tiny_config_dict
    from roberta_prelayernorm.training.state import decay_groups

    settings = tiny_config_dict(is_decoder=head == "ForCausalLM", num_labels=2)
    ours = getattr(rp, "RobertaPreLayerNorm" + head)(rp.RobertaPreLayerNormConfig(**settings))
    theirs = getattr(transformers, "RobertaPreLayerNorm" + head)(transformers.RobertaPreLayerNormConfig(**settings))
    names = {id(p): name for name, p in ours.named_parameters()}
    by_type = {name for name in get_parameter_names(theirs, [torch.nn.LayerNorm]) if "bias" not in name}
    decay, no_decay = decay_groups(ours)
    assert {names[id(p)] for p in decay} == by_type & set(names.values())
    assert len(decay) + len(no_decay) == len(names)
    if head == "ForMaskedLM":
        assert {"lm_head.layer_norm.weight", "lm_head.bias"} <= {names[id(p)] for p in no_decay}
        trainer = transformers.Trainer(model=theirs, args=transformers.TrainingArguments("unused", report_to=[]))
        decayed_by_trainer = trainer.get_decay_parameter_names(theirs)  # the prefix matched: no encoder weight
        assert "lm_head.dense.weight" in decayed_by_trainer
        assert not [name for name in decayed_by_trainer if name.startswith("roberta_prelayernorm.")]


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


def test_resume_into_another_folder_without_best(tmp_path, tiny):
    """A checkpoint resumed into a folder without its run's best/ (another output folder, or a machine given
    only the checkpoint) finishes and chooses best/ again, instead of failing at the end."""
    first = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=4, save_every=2, eval_every=2,
                           output_dir=str(tmp_path / "first")))
    first.train()
    again = Trainer(config(tmp_path, "sequence-classification", tiny, max_steps=4, save_every=2, eval_every=2,
                           output_dir=str(tmp_path / "again")))
    again.train(resume=str(tmp_path / "first" / "checkpoints" / "step-00000002"))
    assert again.best is not None and again.best["step"] == 4
    assert {"best", "last", "config.json"} <= set(os.listdir(tmp_path / "again"))
    rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tmp_path / "again")


def test_max_length_is_checked_against_the_model_before_the_data_is_tokenized(tmp_path, tiny, monkeypatch):
    from roberta_prelayernorm.tasks.sequence_classification import SequenceClassification

    monkeypatch.setattr(SequenceClassification, "features", lambda self, examples: pytest.fail("tokenized first"))
    with pytest.raises(ValueError, match="max_length=4096 is longer than the model takes"):
        Trainer(config(tmp_path, "sequence-classification", tiny, max_length=4096))


def test_a_task_option_is_declared_once_and_reaches_every_use(tmp_path, tiny):
    """Each field of a task's Options is a task keyword, a TrainingConfig field, a `train` and an `evaluate`
    flag with its help, a resume setting, and checked by the task itself."""
    import argparse
    import dataclasses

    from roberta_prelayernorm.cli import build_parser
    from roberta_prelayernorm.tasks import OPTION_NAMES, TASKS

    subcommands = build_parser()._subparsers._group_actions[0].choices
    declared = [f for task in TASKS.values() for f in dataclasses.fields(task.Options)]
    assert {f.name for f in declared} == set(OPTION_NAMES) >= {"stride", "label_all_pieces", "mlm_probability"}
    for option in declared:
        assert option.name in {f.name for f in dataclasses.fields(TrainingConfig)}
        for command in ("train", "evaluate"):
            action = next(a for a in subcommands[command]._actions if a.dest == option.name)
            assert action.help.startswith(option.metadata["help"])
            assert action.default is argparse.SUPPRESS  # unset unless given: the Options' default applies
    trainer = Trainer(config(tmp_path, "question-answering", tiny, stride=8))
    assert trainer.task.options.stride == 8 and trainer.settings()["stride"] == 8
    with pytest.raises(ValueError, match="stride=64 is not allowed: an int in \\[0, max_length=64\\)"):
        TASKS["question-answering"](trainer.tokenizer, 64, stride=64)
