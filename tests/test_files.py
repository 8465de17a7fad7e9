"""Files, disks and processes as they are: outputs written the way their path asks (through symlinks, into
devices and FIFOs as streams), folders the user owns never replaced, every rename of a swap recoverable, a full
disk named, reads that see one save."""

import os
import shutil
import stat
import subprocess
import threading

import pytest
import torch

import roberta_prelayernorm as rp
from roberta_prelayernorm.files import WriteError, atomic_write, atomic_write_text, check_output, open_output
from roberta_prelayernorm.training.checkpoints import clean_temporaries, find_checkpoint, save_model, save_top

pytestmark = pytest.mark.usefixtures("one_thread")


# -- one rule for a path the user names --------------------------------------------------------------------
def test_a_symlink_is_written_through(tmp_path):
    target = tmp_path / "data" / "results.jsonl"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "results.jsonl"
    link.symlink_to(target)
    atomic_write_text(str(link), "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    with open_output(str(link)) as f:  # line by line, the same rule
        f.write("newer\n")
    assert link.is_symlink() and target.read_text() == "newer\n"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # nothing left beside the link


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(str(path), "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_text() == "new"


def test_a_fifo_is_written_as_a_stream(tmp_path):
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    check_output(str(fifo), "--output")
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic_write_text(str(fifo), '{"a": 1}\n')
    reader.join(timeout=10)
    assert received == ['{"a": 1}\n']  # the reader got the lines (it would wait forever for a replaced FIFO)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a character device needs root")
def test_a_device_is_written_as_a_stream_not_replaced(tmp_path):
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's own numbers
    check_output(str(null), "--output")
    atomic_write(str(null), lambda name: torch.save({"x": torch.ones(2)}, name))
    atomic_write_text(str(null), "text")
    assert stat.S_ISCHR(os.stat(null).st_mode) and os.stat(null).st_rdev == os.makedev(1, 3)


def test_the_task_command_writes_through_a_symlink(tmp_path, tiny):
    from roberta_prelayernorm.cli import main

    model = tmp_path / "model"
    rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(tiny, num_labels=2).save_pretrained(model)
    for name in os.listdir(tiny):
        if not name.startswith(("config", "model")):
            shutil.copy(os.path.join(tiny, name), model / name)
    target = tmp_path / "kept" / "out.jsonl"
    target.parent.mkdir()
    target.write_text("stale\n")
    (tmp_path / "out.jsonl").symlink_to(target)
    assert main(["classify", "--model", str(model), "--output", str(tmp_path / "out.jsonl"), "good day"]) == 0
    assert (tmp_path / "out.jsonl").is_symlink() and '"good day"' in target.read_text()


# -- a full disk --------------------------------------------------------------------------------------------
@pytest.fixture
def mount_tmpfs():
    """mount_tmpfs(folder, size=None) mounts a tmpfs on `folder` (root only: the test is skipped where mounting
    is not allowed); every one is unmounted after the test, whatever happened."""
    mounted = []

    def mount(folder, size=None):
        folder.mkdir(exist_ok=True)
        options = ["-o", f"size={size}"] if size else []
        done = subprocess.run(["mount", "-t", "tmpfs", *options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_tmpfs(tmp_path, mount_tmpfs):
    """A 256 KiB tmpfs."""
    return mount_tmpfs(tmp_path / "small", size="256k")


def test_a_full_disk_is_named_and_the_previous_file_kept(small_tmpfs):
    from safetensors.torch import save_file

    path = small_tmpfs / "model.safetensors"
    save_file({"w": torch.zeros(1000)}, str(path))
    before = path.read_bytes()
    with pytest.raises(WriteError, match=f"cannot write {path}: the disk is full") as caught:
        atomic_write(str(path), lambda name: save_file({"w": torch.zeros(200_000)}, name))  # 800 KB
    assert caught.value.errno == 28 and "\n" not in str(caught.value)
    assert path.read_bytes() == before and os.listdir(small_tmpfs) == ["model.safetensors"]


# -- folders: the user's never replaced, every rename recoverable ---------------------------------------------
def labelled_model(tiny, name: str):
    """A tiny classifier whose label names and classifier bias both say `name`: a folder mixing two saves shows."""
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(
        tiny, num_labels=2, id2label={0: f"{name}-0", 1: f"{name}-1"}, label2id={f"{name}-0": 0, f"{name}-1": 1})
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(float(ord(name)))
    return model


def saved_as(folder) -> str:
    """Which save a model folder holds ("A" or "B"), after checking its config and weights are of that one save."""
    model = rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(folder)
    name = model.config.id2label[0][0]
    assert model.classifier.out_proj.bias[0].item() == ord(name), f"{folder}: config of {name}, weights of another"
    return name


class FailingRenames:
    """os.rename and os.replace raising at call number `k` (from 0), as a kill there would stop the run."""

    def __init__(self, monkeypatch, k: int):
        self.calls, self.k = 0, k
        for name in ("rename", "replace"):
            monkeypatch.setattr(os, name, self.wrap(getattr(os, name)))

    def wrap(self, real):
        def call(*args, **kwargs):
            self.calls += 1
            if self.calls - 1 == self.k:
                raise OSError(f"killed at rename {self.k}")
            return real(*args, **kwargs)
        return call


def test_a_save_killed_at_any_rename_leaves_the_old_or_the_new_run(tmp_path, tiny, monkeypatch):
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    a, b = labelled_model(tiny, "A"), labelled_model(tiny, "B")
    first = tmp_path / "first"
    save_model(a, tokenizer, str(first / "best"), card="A", results={})
    save_top(str(first), str(first / "best"))
    (first / "checkpoints").mkdir()
    shutil.copytree(first / "best", first / "checkpoints" / "step-00000002")
    (first / "checkpoints" / "step-00000002" / "trainer_state.pt").write_bytes(b"state")
    (tmp_path / "elsewhere").mkdir()
    (first / "data").symlink_to(tmp_path / "elsewhere")  # the user's own link in the output folder
    seen = set()
    for k in range(200):
        out = tmp_path / f"run-{k}"
        shutil.copytree(first, out, symlinks=True)
        with monkeypatch.context() as patch:
            renames = FailingRenames(patch, k)
            try:
                save_model(b, tokenizer, str(out / "best"), card="B", results={})
                save_top(str(out), str(out / "best"))
                done = True
            except OSError as err:
                assert str(err).endswith(f"killed at rename {k}"), err
                done = False
        clean_temporaries(str(out))  # what the next run (or --resume) does first
        assert find_checkpoint(str(out)) == str(out / "checkpoints" / "step-00000002")
        states = (saved_as(out / "best"), saved_as(out))
        assert (out / "data").is_symlink()  # kept as a link, not turned into a copy
        assert not [n for n in os.listdir(out) if n.startswith(".")], os.listdir(out)
        seen.add(states)
        if done:
            break
    assert k == renames.calls and k > 10  # every rename of the save was a failure point once
    assert ("B", "B") in seen and ("A", "A") in seen


def test_training_into_a_mount_point(tmp_path, tiny, mount_tmpfs):
    from roberta_prelayernorm.training import Trainer, TrainingConfig
    from training_utils import data, head

    out = mount_tmpfs(tmp_path / "volume")
    (out / "notes").symlink_to(tmp_path)  # the user's own things in the folder stay as they are
    train = head(data("sentiment_train.jsonl"), 16, tmp_path / "train.jsonl")
    Trainer(TrainingConfig(task="sequence-classification", model=tiny, train=str(train), validation=str(train),
                           output_dir=str(out), max_steps=2, batch_size=8, max_length=32, progress=False,
                           save_every=1)).train()
    assert os.path.ismount(out) and (out / "notes").is_symlink()
    rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out)
    rp.RobertaPreLayerNormForSequenceClassification.from_pretrained(out / "best")


# -- reads that see one save --------------------------------------------------------------------------------
WRITER = """
import sys, torch
import roberta_prelayernorm as rp
torch.set_num_threads(1)
models = [torch.load(path, weights_only=False) for path in sys.argv[2:]]
print("ready", flush=True)
for i in range(100_000):
    models[i % 2].save_pretrained(sys.argv[1])
"""


def reads_during_saves(writer_code: str, folder, paths: list, saved_as, reads: int, seconds: float = 15) -> None:
    """Run `writer_code` in a process that saves the checkpoints at `paths` into `folder` alternately, and read
    the folder with saved_as (which asserts each read is of one save and names it) up to `reads` times within
    `seconds`: both saves must have been seen, with the writer still saving."""
    import sys
    import time

    writer = subprocess.Popen([sys.executable, "-c", writer_code, str(folder), *paths], stdout=subprocess.PIPE,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert writer.stdout.readline().strip() == b"ready"
        seen, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline and len(seen) < reads:
            seen.append(saved_as(folder))
        assert writer.poll() is None and set(seen) == {"A", "B"}, seen  # the saves did change under the reads
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["folder", "mount point"])
def test_loads_during_saves_see_one_save(tmp_path, tiny, where, mount_tmpfs):
    """A writer process saves two models with different labels into one folder, alternately; every load reads
    one save's config with that save's weights."""
    folder = tmp_path / "model"
    folder.mkdir()
    if where == "mount point":
        mount_tmpfs(folder)
    paths = []
    for name in "AB":
        model = labelled_model(tiny, name)
        torch.save(model, tmp_path / f"{name}.pt")
        paths.append(str(tmp_path / f"{name}.pt"))
    model.save_pretrained(folder)
    reads_during_saves(WRITER, folder, paths, saved_as, reads=150)  # saved_as asserts config and weights agree


TOKENIZER_WRITER = """
import sys
import roberta_prelayernorm as rp
tokenizers = [rp.AutoTokenizer.from_pretrained(path) for path in sys.argv[2:]]
print("ready", flush=True)
for i in range(100_000):
    tokenizers[i % 2].save_pretrained(sys.argv[1])
"""


def tokenizer_saved_as(folder) -> str:
    """Which save a tokenizer folder holds ("A": model_max_length 101 and "alpha" added as id 600; "B": 202 and
    "bravo"), after checking tokenizer_config.json and tokenizer.json are of that one save (a mix registers the
    config's word as a second added token)."""
    tokenizer = rp.AutoTokenizer.from_pretrained(folder)
    name = {101: "A", 202: "B"}[tokenizer.model_max_length]
    word = {"A": "alpha", "B": "bravo"}[name]
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids(word)) == (601, 600), f"{folder}: a mix of saves"
    return name


def test_a_swapped_out_folder_is_removed_once_its_reads_are_done(tmp_path):
    """A read through a folder that a save swaps out holds its lock shared (hub.read_one_save); the save removes
    the old folder only after that read, which so never loses a file (saves one after another, as fast as a
    read, starved readers whose every read was cut short)."""
    from roberta_prelayernorm.files import replace_folder
    from roberta_prelayernorm.hub import save_lock

    target, new = tmp_path / "model", tmp_path / "new"
    for folder, text in ((target, "old"), (new, "new")):
        folder.mkdir()
        (folder / "config.json").write_text(text)
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with save_lock(fd, shared=True):  # a read going on
            save = threading.Thread(target=replace_folder, args=(str(new), str(target)))
            save.start()
            save.join(0.5)
            assert (target / "config.json").read_text() == "new"  # the new folder is in place at once
            assert save.is_alive() and os.listdir(fd) == ["config.json"]  # the old one stays while it is read
        save.join(10)
        assert not save.is_alive() and not os.path.exists(new) and os.listdir(tmp_path) == ["model"]
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["folder", "mount point"])
def test_tokenizer_loads_during_saves_see_one_save(tmp_path, tiny, where, mount_tmpfs):
    """As the model's loads above: a writer process saves two tokenizers into one folder, alternately; every
    load reads tokenizer_config.json and tokenizer.json of one save."""
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    if where == "mount point":
        mount_tmpfs(folder)
    paths = []
    for name, length, word in (("A", 101, "alpha"), ("B", 202, "bravo")):
        tokenizer = rp.AutoTokenizer.from_pretrained(tiny, model_max_length=length)
        assert len(tokenizer) == 600 and tokenizer.add_tokens([word]) == 1
        tokenizer.save_pretrained(tmp_path / name)
        paths.append(str(tmp_path / name))
    tokenizer.save_pretrained(folder)
    # a load takes about 2 ms, a save 10 times that; tokenizer_saved_as asserts the files agree
    reads_during_saves(TOKENIZER_WRITER, folder, paths, tokenizer_saved_as, reads=2000)


# -- every signal that ends a command leaves what Ctrl-C leaves -----------------------------------------------
SIGNALLED = """
import os, signal, sys, time
import roberta_prelayernorm.convert as convert
import roberta_prelayernorm.training.corpus as corpus
from roberta_prelayernorm.cli import main

number = int(sys.argv[1])
# As in a terminal, whatever launched the tests: a background job of a shell without job control inherits SIGINT
# ignored, and nohup SIGHUP (an ignored signal stays ignored: test_a_signal_ignored_on_purpose_stays_ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, signal.SIG_DFL)


def arrives(*args, **kwargs):  # the signal arrives while the command writes its output
    os.kill(os.getpid(), number)
    time.sleep(30)


convert.copy_tokenizer = corpus.save_array = arrives
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("number", [2, 15, 1], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_leaves_no_temporary_files(tmp_path, tiny, number):
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-c", SIGNALLED, str(number), *args], capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)

    done = run("convert", tiny, "--output", str(tmp_path / "converted"))
    assert done.returncode == 128 + number and done.stderr.strip().splitlines()[-1].startswith("interrupted")
    assert os.listdir(tmp_path) == []  # neither the output nor its temporary folder
    text = tmp_path / "text.txt"
    text.write_text("one document\nanother one\n")
    done = run("tokenize-corpus", str(text), "--tokenizer", tiny, "--output", str(tmp_path / "corpus"),
               "--no-progress")
    assert done.returncode == 128 + number, done.stderr
    assert sorted(os.listdir(tmp_path / "corpus" / ".chunks")) == ["chunk-000000.bin", "plan.json"]  # no .tmp


# -- what the user owns is refused or kept ---------------------------------------------------------------------
def test_demo_into_a_finished_run_needs_overwrite(tmp_path, capsys):
    from roberta_prelayernorm.cli import main

    out = tmp_path / "demo"
    (out / "sequence-classification" / "best").mkdir(parents=True)
    (out / "sequence-classification" / "metrics.jsonl").write_text("{}\n")
    assert main(["demo", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --output {out} is not empty (it holds sequence-classification); pass --overwrite to "
                   "replace an earlier demo run there, or choose a new folder\n")
    assert sorted(os.listdir(out)) == ["sequence-classification"]  # nothing written
    assert (out / "sequence-classification" / "metrics.jsonl").read_text() == "{}\n"


# -- a full disk and a damaged checkpoint during training -------------------------------------------------------
def train_args(tmp_path, tiny, *more):
    from training_utils import data, head

    train = head(data("sentiment_train.jsonl"), 16, tmp_path / "train.jsonl")
    return ["train", "--task", "sequence-classification", "--model", tiny, "--train", str(train), "--output",
            str(tmp_path / "out"), "--max-steps", "4", "--save-every", "2", "--batch-size", "8", "--max-length",
            "32", "--no-progress", *more]


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, tiny, monkeypatch,
                                                                                    capsys):
    import safetensors.torch
    from safetensors import SafetensorError

    from roberta_prelayernorm.cli import main

    real, saves = safetensors.torch.save_file, []

    def save_file(tensors, path, metadata=None):
        saves.append(path)
        if len(saves) == 2:  # the step-4 checkpoint: the disk is full
            raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                  '"No space left on device" })')
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    assert main(train_args(tmp_path, tiny, "--max-steps", "6")) == 2
    err = capsys.readouterr().err
    step4 = tmp_path / "out" / "checkpoints" / "step-00000004"
    assert err == f"error: cannot write {step4}/model.safetensors: the disk is full (free space, then run again)\n"
    assert sorted(os.listdir(tmp_path / "out" / "checkpoints")) == ["step-00000002"]  # intact, nothing half
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    assert main(train_args(tmp_path, tiny, "--max-steps", "6", "--resume")) == 0  # it resumes from step 2


def test_a_truncated_checkpoint_on_resume_is_one_line(tmp_path, tiny, capsys):
    from roberta_prelayernorm.cli import main

    assert main(train_args(tmp_path, tiny, "--max-steps", "3")) == 0  # a checkpoint at step 2
    state = tmp_path / "out" / "checkpoints" / "step-00000002" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    capsys.readouterr()
    assert main(train_args(tmp_path, tiny, "--max-steps", "3", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot resume from {state}: the file is truncated or corrupt (") and \
        err.count("\n") == 1 and "weights_only" not in err, err


def test_a_full_disk_while_logging_names_the_file(small_tmpfs):
    from roberta_prelayernorm.files import append_text

    path = small_tmpfs / "metrics.jsonl"
    append_text(str(path), "{}\n")
    with pytest.raises(WriteError, match=f"^cannot write {path}: the disk is full"):
        append_text(str(path), "x" * 1_000_000)
    assert path.read_text().startswith("{}\n")


def test_convert_into_an_empty_mount_point(tmp_path, tiny, mount_tmpfs):
    from roberta_prelayernorm.convert import convert

    out = mount_tmpfs(tmp_path / "volume")
    assert convert(tiny, str(out))["difference"] < 1e-5
    assert os.path.ismount(out) and {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_a_signal_ignored_on_purpose_stays_ignored():
    import signal

    from roberta_prelayernorm.cli import interrupted_by

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    term = signal.getsignal(signal.SIGTERM)
    try:
        with interrupted_by(signal.SIGTERM, signal.SIGHUP):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not term
        assert signal.getsignal(signal.SIGTERM) is term  # given back
    finally:
        signal.signal(signal.SIGHUP, previous)


KILLED_AMONG_MOVES = """
import json, os, signal, sys
import torch
from roberta_prelayernorm.training import Trainer, TrainingConfig

real, moved = os.replace, []


def replace(source, target):  # kill -9 after the first file of the top-level model was moved in
    if os.sep + ".new-" in source:
        moved.append(target)
        if len(moved) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(source, target)


os.replace = replace
torch.set_num_threads(1)
Trainer(TrainingConfig(**json.loads(sys.argv[1]))).train()
"""


@pytest.mark.slow
def test_a_run_killed_among_its_final_moves_resumes(tmp_path, tiny):
    import json
    import sys

    from roberta_prelayernorm.training import Trainer, TrainingConfig
    from training_utils import data, head

    train = head(data("sentiment_train.jsonl"), 16, tmp_path / "train.jsonl")
    config = dict(task="sequence-classification", model=tiny, train=str(train), validation=str(train),
                  output_dir=str(tmp_path / "out"), max_steps=4, save_every=2, batch_size=8, max_length=32,
                  progress=False)
    done = subprocess.run([sys.executable, "-c", KILLED_AMONG_MOVES, json.dumps(config)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    out = tmp_path / "out"
    assert [n for n in os.listdir(out) if n.startswith(".new-")]  # killed half way through the moves
    Trainer(TrainingConfig(**config)).train(resume=True)
    assert not [n for n in os.listdir(out) if n.startswith((".new-", ".tmp-", ".old-"))]
    for name in ("config.json", "model.safetensors"):
        assert (out / name).read_bytes() == (out / "best" / name).read_bytes(), name


def test_the_top_model_saved_again_from_an_unchanged_best(tmp_path, tiny):
    """The top-level files are hard links to best/'s: moving the same links in again must work (rename() between
    two links to one file does nothing)."""
    out = tmp_path / "out"
    save_model(labelled_model(tiny, "A"), rp.AutoTokenizer.from_pretrained(tiny), str(out / "best"), card="A",
               results={})
    save_top(str(out), str(out / "best"))
    save_top(str(out), str(out / "best"))  # a resumed run whose best/ did not change
    assert saved_as(out) == "A" and not [n for n in os.listdir(out) if n.startswith(".")]
