"""Reliability, round two: long inputs fit the model, folders are written whole, one run per output folder,
the output folder loads, and every CLI error is one line with exit code 2."""

import contextlib
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm import files
from roberta_prelayernorm.cli import main
from roberta_prelayernorm.training import NonFiniteLossError, Trainer, TrainingConfig
from training_utils import data, head, write_jsonl


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def heads(tiny, tmp_path_factory):
    """A folder per task head on the tiny model (66 positions: 64 tokens) with its tokenizer."""
    folders = {}
    base = tmp_path_factory.mktemp("heads")
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    for task, cls in (("classify", rp.RobertaPreLayerNormForSequenceClassification),
                      ("tag", rp.RobertaPreLayerNormForTokenClassification),
                      ("answer", rp.RobertaPreLayerNormForQuestionAnswering),
                      ("choose", rp.RobertaPreLayerNormForMultipleChoice),
                      ("fill-mask", rp.RobertaPreLayerNormForMaskedLM)):
        torch.manual_seed(0)
        folder = str(base / task)
        cls(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[task] = folder
    return folders


def run_cli(*args):
    """(exit code, stdout, stderr) of the console script's main, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            err.write(str(exit_.code) if not isinstance(exit_.code, int) else "")
    return code, out.getvalue(), err.getvalue()


def train_config(tmp_path, tiny, task="sequence-classification", validation=True, **overrides):
    name = {"masked-lm": "corpus"}.get(task, "sentiment")
    tmp_path.mkdir(parents=True, exist_ok=True)
    train = head(data(f"{name}_train.jsonl" if task != "masked-lm" else "corpus.jsonl"), 16, tmp_path / "train.jsonl")
    values = dict(task=task, model=tiny, train=str(train), validation=None if validation is True else validation,
                  output_dir=str(tmp_path / "out"), max_steps=4, batch_size=8, learning_rate=1e-3, max_length=64,
                  progress=False, log_every=2, save_every=2, eval_every=2)
    values.update(overrides)
    if validation is True:
        values["validation"] = values["train"]
    return TrainingConfig(**values)


# -- 1. long inputs ---------------------------------------------------------------------------------------
LONG = " ".join(["word"] * 400)  # far more than the tiny model's 64 tokens


@pytest.mark.parametrize("task, line", [
    ("classify", {"text": LONG}),
    ("tag", {"text": LONG + " Paris"}),
    ("answer", {"question": "Which word?", "context": LONG}),
    ("choose", {"prompt": LONG, "choices": ["a", LONG]}),
])
def test_long_inputs_fit_the_model_in_every_task_command(tmp_path, heads, task, line):
    path = write_jsonl(tmp_path / "in.jsonl", [line, {k: v[:20] if isinstance(v, str) else v for k, v in line.items()}])
    code, out, err = run_cli(task, "--model", heads[task], "--input", path)
    assert code == 0, err
    assert len(out.splitlines()) == 2


def test_a_long_fill_mask_line_is_that_lines_error_and_the_others_run(tmp_path, heads):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": LONG + " <mask>"}, {"text": "a <mask> b"}])
    code, out, err = run_cli("fill-mask", "--model", heads["fill-mask"], "--input", path, "--on-error", "skip")
    assert code == 0
    assert [json.loads(line)["text"] for line in out.splitlines()] == ["a <mask> b"]
    assert "in.jsonl:1:" in err and "the model takes at most 64" in err
    assert "Traceback" not in err


def test_pipelines_take_the_length_from_the_model_when_the_tokenizer_has_none(heads):
    tokenizer = rp.AutoTokenizer.from_pretrained(heads["classify"], model_max_length=None)
    assert tokenizer.model_max_length > 1e20
    classify = rp.pipeline("text-classification", model=heads["classify"], tokenizer=tokenizer)
    assert classify.tokenizer.model_max_length == 64
    assert classify(LONG, truncation=True)[0]["label"]


def test_training_saves_a_tokenizer_with_the_models_length(tmp_path, tiny):
    Trainer(train_config(tmp_path, tiny, max_steps=2)).train()
    saved = json.loads((tmp_path / "out" / "last" / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 64
    assert rp.tokenizer.train_byte_level_bpe(["a b c"] * 10, vocab_size=300).model_max_length == 512


def test_a_max_length_longer_than_the_model_is_refused(tmp_path, tiny):
    with pytest.raises(ValueError, match="max_length=128 is longer than the model takes: 64 tokens"):
        Trainer(train_config(tmp_path, tiny, max_length=128))


# -- 2. whole-folder atomic writes ------------------------------------------------------------------------
def writes_fail_after(monkeypatch, k):
    """Make every file write after the first k raise (as a kill at that write boundary would stop it): every
    write goes through files.writing (atomic_write, atomic_write_text, open_output call it)."""
    real, count = files.writing, [0]

    @contextlib.contextmanager
    def write(path):
        count[0] += 1
        if count[0] > k:
            raise KeyboardInterrupt(f"killed before write {count[0]}")
        with real(path) as name:
            yield name

    monkeypatch.setattr(files, "writing", write)
    return count


def test_save_pretrained_interrupted_at_every_write_leaves_the_previous_folder(tmp_path, monkeypatch, tiny):
    folder = tmp_path / "model"
    config = rp.RobertaPreLayerNormConfig.from_pretrained(tiny)
    torch.manual_seed(0)
    old = rp.RobertaPreLayerNormForMaskedLM(config)
    old.save_pretrained(folder)
    rp.AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    torch.manual_seed(1)
    new = rp.RobertaPreLayerNormForMaskedLM(config)
    for k in range(3):  # model.safetensors, config.json, then done
        count = writes_fail_after(monkeypatch, k)
        try:
            new.save_pretrained(folder)
        except KeyboardInterrupt:
            pass
        monkeypatch.undo()
        loaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder)
        expected = new if count[0] <= k else old
        torch.testing.assert_close(loaded.state_dict(), expected.state_dict(), rtol=0, atol=0)
        assert len(rp.AutoTokenizer.from_pretrained(folder)) == len(rp.AutoTokenizer.from_pretrained(tiny))
        assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folder left behind
    assert count[0] <= k  # the last round completed


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


# -- 3. one run per output ----------------------------------------------------------------------------------
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


# -- 5. every step skipped -----------------------------------------------------------------------------------
def test_every_step_skipped_is_an_error_and_saves_nothing(tmp_path, tiny):
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tiny, num_labels=2)
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(float("nan"))
    config = train_config(tmp_path, tiny, on_nonfinite="skip", validation=False)
    with pytest.raises(NonFiniteLossError, match="no optimizer step was taken"):
        Trainer(config, model=model).train()
    assert not (tmp_path / "out" / "last").exists()


# -- 7. one line and exit code 2 for every CLI error ----------------------------------------------------------
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


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path, tiny):
    args = ["evaluate", "--task", "sequence-classification", "--model", tiny, "--data", tmp_path / "missing.jsonl",
            "--max-length", "64"]
    with pytest.raises(OSError):
        main([str(a) for a in args] + ["--debug"])
    env = {**os.environ, "ROBERTA_PRELAYERNORM_DEBUG": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "roberta_prelayernorm", *map(str, args)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_outputs_are_checked_before_the_work(tmp_path, tiny, heads):
    code, _, err = run_cli("classify", "--model", heads["classify"], "hello", "--output",
                           tmp_path / "no" / "such" / "out.jsonl")
    assert code == 2 and "does not exist" in err
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        code, _, err = run_cli("train", "--task", "sequence-classification", "--model", tiny, "--train",
                               data("sentiment_train.jsonl"), "--output", read_only / "out")
        assert code == 2 and "is not writable" in err, err
    finally:
        read_only.chmod(0o700)


def test_cuda_without_cuda_is_one_line(heads):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli("classify", "--model", heads["classify"], "hello", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


# -- 11. the output folder loads -------------------------------------------------------------------------------
@pytest.mark.parametrize("validation", [True, False])
def test_the_output_folder_loads_with_from_pretrained(tmp_path, tiny, validation):
    Trainer(train_config(tmp_path, tiny, validation=validation)).train()
    out = tmp_path / "out"
    top = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out)
    source = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out / ("best" if validation else "last"))
    torch.testing.assert_close(top.state_dict(), source.state_dict(), rtol=0, atol=0)
    assert rp.AutoTokenizer.from_pretrained(out).model_max_length == 64
    assert (out / "metrics.jsonl").exists() and (out / "last").is_dir()


# -- 6. resume compares the settings ---------------------------------------------------------------------------
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


# -- 4 and 9. data errors name the file, line and field --------------------------------------------------------
from roberta_prelayernorm.training import DataError, read_records  # noqa: E402
from roberta_prelayernorm.tasks import make_task  # noqa: E402


def fit_labels(tmp_path, labels, tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "label": v} for i, v in enumerate(labels)])
    task = make_task("sequence-classification", tokenizer, 64)
    records = read_records(path)
    task.fit(records)
    task.examples(records)
    return task


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 1.0], "d.jsonl, line 3: field 'label': 1.0 is a float among integer class indices"),
    ([0.5, float("nan"), 1.0], "d.jsonl, line 2: field 'label': nan is not a finite number"),
    ([0.5, float("inf")], "line 2: field 'label': inf is not a finite number"),
    ([[], []], "line 1: field 'label': every label list in the file is empty"),
    (["3.5", 3.5], "line 2: field 'label': is a float \\(regression\\) but the first record's label"),
    ([1, -1], "line 2: field 'label': class index -1 is negative"),
])
def test_label_kinds_are_decided_per_file(tmp_path, tiny, labels, message):
    with pytest.raises(DataError, match=message):
        fit_labels(tmp_path, labels, rp.AutoTokenizer.from_pretrained(tiny))


def test_label_kind_rules(tmp_path, tiny):
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    assert fit_labels(tmp_path, ["3.5", "2"], tokenizer).names == ["2", "3.5"]  # strings: class names
    assert fit_labels(tmp_path, [3, 3.5], tokenizer).kind == "regression"
    assert fit_labels(tmp_path, [1.0, 2.0], tokenizer).kind == "regression"
    assert fit_labels(tmp_path, [0, 2], tokenizer).names == ["LABEL_0", "LABEL_1", "LABEL_2"]


def test_a_negative_answer_start_is_a_data_error(tmp_path, tiny):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q?", "context": "abc def",
                                                 "answers": {"text": ["def"], "answer_start": [-3]}}])
    task = make_task("question-answering", rp.AutoTokenizer.from_pretrained(tiny), 64)
    with pytest.raises(DataError, match="qa.jsonl, line 1: field 'answers.answer_start': -3 .* outside"):
        task.examples(read_records(path))


def test_csv_text_cells_stay_text_and_a_bom_is_skipped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufefftext,label\n1984,1\nnan,0\n".encode("utf-8"))
    records = read_records(str(path))
    assert [r.get("text", str) for r in records] == ["1984", "nan"]
    assert [r.get("label", int) for r in records] == [1, 0]


def test_a_masked_lm_batch_always_has_a_masked_token():
    from roberta_prelayernorm.tasks.collate import mask_tokens

    ids = torch.tensor([[0, 5, 6, 2]])
    special = torch.tensor([[1, 0, 0, 1]])
    for seed in range(20):
        _, labels = mask_tokens(ids, special, 0.01, "mask", 9, 10, torch.Generator().manual_seed(seed))
        assert (labels != -100).sum() >= 1
        assert (labels[special.bool()] == -100).all()


def test_constant_regression_labels_still_give_a_best_model(tmp_path, tiny):
    path = write_jsonl(tmp_path / "r.jsonl", [{"text": f"text {i}", "label": 0.5} for i in range(16)])
    trainer = Trainer(train_config(tmp_path, tiny, train=path, validation=path, save_every=100))
    trainer.train()
    assert trainer.best["metric"] == "loss"
    assert (tmp_path / "out" / "best" / "config.json").exists()


# -- 10. question-answering labels on padding are ignored --------------------------------------------------------
def test_qa_positions_on_padding_are_ignored_like_positions_past_the_sequence(tiny):
    torch.manual_seed(0)
    model = rp.RobertaPreLayerNormForQuestionAnswering(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).eval()
    ids = torch.tensor([[0, 50, 60, 70, 2, 1, 1], [0, 50, 60, 70, 80, 90, 2]])
    mask = (ids != 1).long()
    mask[1] = 1
    on_padding = model(ids, mask, start_positions=torch.tensor([5, 2]), end_positions=torch.tensor([6, 3])).loss
    past_end = model(ids, mask, start_positions=torch.tensor([99, 2]), end_positions=torch.tensor([99, 3])).loss
    assert on_padding.item() < 100
    torch.testing.assert_close(on_padding, past_end)


# -- 9. attention masks hold 0 and 1 --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_an_attention_mask_other_than_0_and_1_is_an_input_error(tiny, value):
    model = rp.RobertaPreLayerNormModel(rp.RobertaPreLayerNormConfig.from_pretrained(tiny))
    mask = torch.tensor([[1, 1, value]], dtype=torch.float if isinstance(value, float) else torch.long)
    with pytest.raises(rp.InputError, match=f"attention_mask holds {value}.*must be 0 or 1"):
        model(torch.tensor([[0, 5, 2]]), mask)


# -- 8. library errors become one-line errors that name the file or the option ----------------------------------
@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.json", "merges.txt"])
def test_a_truncated_tokenizer_file_is_named(tmp_path, tiny, name):
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(tiny, folder)
    if name != "tokenizer.json":
        (folder / "tokenizer.json").unlink()
    text = (folder / name).read_text(encoding="utf-8")
    (folder / name).write_text(text[:len(text) // 2].rsplit("\n", 1)[0] + ("\n#\nx" if name == "merges.txt" else ""),
                               encoding="utf-8")
    with pytest.raises(ValueError, match=f"cannot read tokenizer file .*{name}"):
        rp.AutoTokenizer.from_pretrained(folder)


def test_a_legacy_bin_loads(tmp_path, tiny):
    model = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(tiny)
    folder = tmp_path / "legacy"
    rp.RobertaPreLayerNormConfig.from_pretrained(tiny).save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    loaded = rp.RobertaPreLayerNormForMaskedLM.from_pretrained(folder)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_api_mistakes_are_clear_errors(tiny, heads):
    with pytest.raises(TypeError, match="name_or_path must be a folder or a hub id .* got None"):
        rp.RobertaPreLayerNormModel.from_pretrained(None)
    with pytest.raises(ValueError, match="id2label must have the keys 0..1"):
        rp.RobertaPreLayerNormConfig(id2label={0: "a", 2: "b"})
    classifier = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"])
    with pytest.raises(ValueError, match="needs a RobertaPreLayerNormForQuestionAnswering model"):
        rp.pipeline("question-answering", model=classifier, tokenizer=rp.AutoTokenizer.from_pretrained(tiny))
    with pytest.raises(ValueError, match="needs a float32 model"):
        rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"], quantize="int8",
                                                                        torch_dtype=torch.bfloat16)
    code, _, err = run_cli("fill-mask", "--model", heads["fill-mask"], "a <mask>", "--top-k", "100000")
    assert code == 2 and "top_k=100000 is more than the model's vocabulary" in err


def test_task_command_input_errors_exit_2(tmp_path, heads):
    code, _, err = run_cli("classify", "--model", heads["classify"], "--input", tmp_path / "missing.jsonl")
    assert code == 2 and err.startswith("error: classify: --input") and "No such file" in err
    code, _, err = run_cli("classify", "--model", heads["classify"], "hello", "--input", tmp_path / "x.jsonl")
    assert code == 2 and "not both" in err


def test_an_int8_model_cast_to_bf16_says_so(heads):
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(heads["classify"], quantize="int8")
    model(torch.tensor([[0, 5, 2]]))
    with pytest.raises(ValueError, match="has int8 layers, which take float32, but it was cast to torch.bfloat16"):
        model.to(torch.bfloat16)(torch.tensor([[0, 5, 2]]))


def test_only_user_errors_exit_2_and_internal_errors_say_so(monkeypatch, tmp_path):
    """A UserError (or the system's error about a named file) is the user's: exit 2, one line; any other error,
    a ValueError from a bug included, is internal: exit 1, said so, with the hint to --debug."""
    from roberta_prelayernorm.errors import SettingError
    from roberta_prelayernorm.training import cli as training_cli

    def failing(error):
        def run(args):
            raise error
        return run

    cases = [(SettingError("epochs=-1 is not allowed"), 2, "error: epochs=-1"),
             (FileNotFoundError(2, "No such file or directory", str(tmp_path / "x")), 2, "x"),
             (ValueError("math domain error"), 1, "internal error; --debug shows where"),
             (KeyError("oops"), 1, "internal error")]
    for error, expected, text in cases:
        monkeypatch.setattr(training_cli, "run_evaluate", failing(error))
        code, _, err = run_cli("evaluate", "--task", "sequence-classification", "--model", "m", "--data", "d")
        assert code == expected and text in err and len(err.strip().splitlines()) == 1, (error, code, err)
