"""training/checkpoints.py: output-folder rules, locks, resume checks.

One run per folder, whole folders written, a folder that loads; resuming names a changed setting, and resumes after
SIGKILL to an uninterrupted run's weights.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm import files
from roberta_prelayernorm.training import Trainer
from training_utils import KILLED_RUN, config, data, head, run_cli, train_config, write_jsonl, writes_fail_after

pytestmark = pytest.mark.usefixtures("one_thread")


def loads(folder) -> bool:
    try:
        rp.AutoModelForSequenceClassification.from_pretrained(folder)
        rp.AutoTokenizer.from_pretrained(folder)
        return True
    except (OSError, ValueError):
        return False


def test_training_interrupted_at_every_write_leaves_loadable_folders(tmp_path, monkeypatch, tiny):
    count = writes_fail_after(monkeypatch, 10 ** 6)
    Trainer(train_config(tmp_path / "full", tiny)).train()
    total = count[0]
    monkeypatch.undo()
    assert total >= 20  # best, a checkpoint, last, curves: every write of the run
    for k in range(total):
        run = tmp_path / f"k{k}"
        writes_fail_after(monkeypatch, k)
        with pytest.raises(KeyboardInterrupt):
            Trainer(train_config(run, tiny)).train()
        monkeypatch.undo()
        out = run / "out"
        folders = [out / name for name in ("best", "last") if (out / name).exists()]
        folders += [out / "checkpoints" / name for name in os.listdir(out / "checkpoints")
                    if not name.startswith(".")]
        assert all(loads(folder) for folder in folders), (k, folders)
        assert all(not name.startswith(".tmp-") for name in os.listdir(out))  # none left half-written
        assert not (out / "config.json").exists() or loads(out)


def test_a_locked_output_is_refused_at_once_with_one_line(tmp_path, tiny):
    config = train_config(tmp_path, tiny)
    args = ["train", "--task", config.task, "--model", tiny, "--train", config.train, "--output", config.output_dir,
            "--max-steps", "2", "--max-length", "64", "--no-progress"]
    with files.exclusive_lock(config.output_dir):
        code, _, err = run_cli(*args)
        assert code == 2 and "is in use by process" in err and len(err.strip().splitlines()) == 1
        code, _, err = run_cli(*args, "--resume")
        assert code == 2 and "is in use" in err
        with pytest.raises(files.FolderInUseError):
            Trainer(config).train()


def test_a_finished_run_is_not_replaced_without_overwrite(tmp_path, tiny):
    Trainer(train_config(tmp_path, tiny, save_every=100)).train()
    first = (tmp_path / "out" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="holds a finished run .*--overwrite"):
        Trainer(train_config(tmp_path, tiny, save_every=100)).train()
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == first
    Trainer(train_config(tmp_path, tiny, save_every=100, overwrite=True, seed=3)).train()
    assert (tmp_path / "out" / "metrics.jsonl").read_text() != first


@pytest.mark.parametrize("validation", [True, False])
def test_the_output_folder_loads_with_from_pretrained(tmp_path, tiny, validation):
    Trainer(train_config(tmp_path, tiny, validation=validation)).train()
    out = tmp_path / "out"
    top = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out)
    source = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out / ("best" if validation else "last"))
    torch.testing.assert_close(top.state_dict(), source.state_dict(), rtol=0, atol=0)
    assert rp.AutoTokenizer.from_pretrained(out).model_max_length == 64
    assert (out / "metrics.jsonl").exists() and (out / "last").is_dir()


@pytest.mark.parametrize("change, named", [
    (dict(max_length=32), "max_length=64 then, 32 now"),
    (dict(learning_rate=2e-3), "learning_rate=0.001 then, 0.002 now"),
    (dict(train="other"), "train="),
    (dict(task="token-classification"), "task='sequence-classification' then"),
])
def test_resume_names_the_setting_that_changed(tmp_path, tiny, change, named):
    Trainer(train_config(tmp_path, tiny, max_steps=4, save_every=2)).train()
    (tmp_path / "out" / "last").rename(tmp_path / "out" / "kept")  # as if killed after step 2's checkpoint
    if change.get("train") == "other":
        records = [{"text": "changed", "label": label} for label in ["positive", "negative"] * 8]
        change = dict(train=write_jsonl(tmp_path / "other.jsonl", records))
    if change.get("task") == "token-classification":
        change = dict(change, train=head(data("ner_train.jsonl"), 16, tmp_path / "ner.jsonl"), validation=None)
    with pytest.raises(ValueError, match=f"cannot resume .*{named}"):
        Trainer(train_config(tmp_path, tiny, **change)).train(resume=True)


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
