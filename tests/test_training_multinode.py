"""training/ under torchrun across nodes: two nodes equal one process; the output is written once; resume.

Two "nodes" of one process each on localhost, joined by torchrun's c10d rendezvous, equal a single process with the
same global batch; the output folder is written once (by global rank 0 only), and a two-node run resumed from a
mid-run checkpoint equals an uninterrupted one.

The c10d rendezvous ignores --node-rank and gives global rank 0 to the participant that sorts first (by host
name, then agent pid: on one machine, by chance), so nothing here depends on which launch gets which rank.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import roberta_prelayernorm as rp
from training_utils import data, head, make_tiny_model

pytestmark = pytest.mark.slow  # torchrun jobs: `make test-fast` leaves them out

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
TIMEOUT = 120  # seconds for one job (both nodes); a hung rendezvous or collective fails the test, not the session
STEPS, SAVE = 4, 2  # one checkpoint mid-run (checkpoints/step-00000002), none at the end (save_every < total only)
Model = rp.RobertaPreLayerNormForSequenceClassification


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single(*args) -> dict:
    """One process; the final metrics it prints."""
    result = subprocess.run([sys.executable, "-m", "roberta_prelayernorm", *map(str, args)], capture_output=True,
                            text=True, env=ENV, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def two_nodes(tmp_path, name: str, node_args, succeed: bool = True):
    """Two torchrun launches of one process each, --nnodes 2 with a c10d rendezvous on localhost, started
    together; node_args(node) gives the train arguments of launch `node` (0 or 1). Returns the final metrics,
    printed by global rank 0 alone; with succeed=False, each node's exit code and standard error."""
    port = free_port()
    procs, logs = [], []
    for node in (0, 1):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                    "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                    "--rdzv-id", f"{name}-{port}", "-m", "roberta_prelayernorm"]
        out, err = (open(tmp_path / f"{name}-node{node}.{kind}", "w+", encoding="utf-8") for kind in ("out", "err"))
        logs.append((out, err))
        # A session of its own: on a timeout, the launcher and the worker it started are killed together.
        procs.append(subprocess.Popen([*launcher, *map(str, node_args(node))], stdout=out, stderr=err, env=ENV,
                                      start_new_session=True))
    deadline = time.monotonic() + TIMEOUT
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        timed_out = [proc for proc in procs if proc.poll() is None]
        for proc in timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    texts = []
    for out, err in logs:
        out.seek(0)
        err.seek(0)
        texts.append((out.read(), err.read()))
        out.close()
        err.close()
    # The CLI's one-line "error: ..." first: torchrun's tracebacks after it would push it out of a tail.
    report = "\n".join(f"--- node {n} (exit {p.returncode}): "
                       f"{[line for line in e.splitlines() if line.startswith('error:')]}\n{e[-2000:]}"
                       for n, (p, (_, e)) in enumerate(zip(procs, texts)))
    assert not timed_out, f"the two-node job ran past {TIMEOUT} s\n{report}"
    if not succeed:
        return [(p.returncode, e) for p, (_, e) in zip(procs, texts)]
    assert all(p.returncode == 0 for p in procs), report
    printed = [o.strip().splitlines()[-1] for o, _ in texts if o.strip()]
    assert len(printed) == 1, f"the final metrics should be printed once (by rank 0): {printed}\n{report}"
    return json.loads(printed[0])


def entries(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def weights(folder) -> dict:
    return Model.from_pretrained(folder).state_dict()


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=rtol, msg=name)


def assert_complete_output(folder) -> None:
    """A finished run's folder, each part written once: one mid-run checkpoint, best/ and last/ and the top
    folder loadable, metrics.jsonl with each (split, step) once, no temporaries left behind."""
    names = set(os.listdir(folder))
    assert {"best", "last", "checkpoints", "metrics.jsonl", "config.json", "model.safetensors"} <= names
    assert not [n for n in names if n.startswith((".tmp-", ".old-"))], names
    assert os.listdir(folder / "checkpoints") == [f"step-{SAVE:08d}"]
    checkpoint = folder / "checkpoints" / f"step-{SAVE:08d}"
    assert {"trainer_state.pt", "model.safetensors", "config.json", "tokenizer.json"} <= set(os.listdir(checkpoint))
    state = torch.load(checkpoint / "trainer_state.pt", map_location="cpu", weights_only=True)
    assert state["step"] == SAVE and state["world_size"] == 2 and len(state["rng"]) == 2
    for model_folder in (folder / "best", folder / "last", folder, checkpoint):
        Model.from_pretrained(model_folder)
    assert [(e["split"], e["step"]) for e in entries(folder)] == [
        ("train", 1), ("train", 2), ("validation", 2), ("train", 3), ("train", 4), ("validation", 4)]


def train_losses(folder) -> list[float]:
    return [e["loss"] for e in entries(folder) if e["split"] == "train"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A single-process run (batch 4) and a two-node run (batch 2 per node) of the same job, sharing a disk."""
    tmp = tmp_path_factory.mktemp("multinode")
    model = make_tiny_model(str(tmp / "tiny"), dropout=0.0)  # dropout draws would differ between processes
    train = head(data("sentiment_train.jsonl"), 48, tmp / "train.jsonl")
    common = ["train", "--task", "sequence-classification", "--model", model, "--train", train, "--validation", train,
              "--max-steps", STEPS, "--learning-rate", 5e-3, "--max-length", 64, "--no-progress", "--grad-accum", 2,
              "--save-every", SAVE, "--eval-every", SAVE, "--log-every", 1]
    one = single(*common, "--output", tmp / "one", "--batch-size", 4)
    two = two_nodes(tmp, "two", lambda node: [*common, "--output", tmp / "two", "--batch-size", 2])
    return {"tmp": tmp, "common": common, "one": one, "two": two}


def test_two_nodes_equal_one_process_with_the_same_global_batch(runs):
    tmp = runs["tmp"]
    assert runs["two"] == pytest.approx(runs["one"], rel=1e-4, abs=1e-6)
    for name in ("last", "best"):
        assert_same_weights(weights(tmp / "one" / name), weights(tmp / "two" / name))
    assert_same_weights(weights(tmp / "one" / "checkpoints" / f"step-{SAVE:08d}"),
                        weights(tmp / "two" / "checkpoints" / f"step-{SAVE:08d}"))
    assert train_losses(tmp / "two") == pytest.approx(train_losses(tmp / "one"), rel=1e-4)
    assert len(train_losses(tmp / "two")) == STEPS
    assert_complete_output(tmp / "two")
    best = [json.loads((tmp / run / "best" / "eval_results.json").read_text())["step"] for run in ("one", "two")]
    assert best[0] == best[1]


def test_without_a_shared_disk_only_global_rank_0s_folder_gets_the_output(runs):
    """Each node given its own output folder (as on machines without a shared file system): the folder of
    whichever node the rendezvous made rank 0 holds the whole run; the other node's holds no file at all, so
    nothing is written twice, and that node has no checkpoint to --resume from (every rank reads the
    checkpoint itself: each node needs a copy, or a shared file system)."""
    tmp = runs["tmp"]
    disks = [tmp / "disk0" / "out", tmp / "disk1" / "out"]
    result = two_nodes(tmp, "disks", lambda node: [*runs["common"], "--output", disks[node], "--batch-size", 2])
    assert result == pytest.approx(runs["two"], rel=1e-5, abs=1e-7)
    full = [disk for disk in disks if (disk / "last").is_dir()]
    assert len(full) == 1, [sorted(os.listdir(disk)) for disk in disks]
    other = disks[1 - disks.index(full[0])]
    assert_complete_output(full[0])
    assert_same_weights(weights(full[0] / "last"), weights(tmp / "two" / "last"), atol=1e-6, rtol=1e-5)
    written = [os.path.join(root, name) for root, _, names in os.walk(other) for name in names]
    assert written == [], written  # (Trainer.train makes an empty checkpoints/ there, on every rank)


def test_a_resumed_two_node_run_equals_the_uninterrupted_one(runs):
    """The uninterrupted two-node run's folder as it stood between its checkpoint at step 2 and the end: the
    checkpoint, metrics.jsonl (entries past step 2 included: --resume drops them), best/ if it was chosen by
    then. A two-node --resume from it ends where the uninterrupted run did."""
    tmp, done = runs["tmp"], runs["tmp"] / "two"
    folder = tmp / "resumed"
    checkpoint = f"step-{SAVE:08d}"
    shutil.copytree(done / "checkpoints" / checkpoint, folder / "checkpoints" / checkpoint)
    shutil.copy(done / "metrics.jsonl", folder / "metrics.jsonl")
    if json.loads((done / "best" / "eval_results.json").read_text())["step"] <= SAVE:
        shutil.copytree(done / "best", folder / "best")  # else the resumed run writes best/ itself, as the other did
    result = two_nodes(tmp, "resume", lambda node: [*runs["common"], "--output", folder, "--batch-size", 2,
                                                    "--resume"])
    assert result == pytest.approx(runs["two"], rel=1e-5, abs=1e-7)
    for name in ("last", "best", "."):
        assert_same_weights(weights(folder / name), weights(done / name), atol=1e-6, rtol=1e-5)
    assert_complete_output(folder)
    assert train_losses(folder) == pytest.approx(train_losses(done), rel=1e-5)
    resumed, uninterrupted = entries(folder), entries(done)
    assert [(e["split"], e["step"], sorted(e)) for e in resumed] == [(e["split"], e["step"], sorted(e))
                                                                    for e in uninterrupted]
    measured = ("time", "tokens_per_s", "mfu", "split")  # the time and speed differ; split compared above
    for a, b in zip(resumed, uninterrupted):
        assert {k: v for k, v in a.items() if k not in measured} == pytest.approx(
            {k: v for k, v in b.items() if k not in measured}, rel=1e-5)


def test_resume_with_a_checkpoint_on_one_disk_only_is_one_error_on_every_node(runs):
    """Without a shared disk, a node lacking the checkpoint would fail alone while the other waits in a
    collective (or, with an older one, both would run from different steps): every node checks that all
    found the same checkpoint and stops with the same one-line error instead."""
    tmp = runs["tmp"]
    disks = [tmp / "half0" / "out", tmp / "half1" / "out"]
    checkpoint = f"step-{SAVE:08d}"
    shutil.copytree(tmp / "two" / "checkpoints" / checkpoint, disks[0] / "checkpoints" / checkpoint)
    disks[1].mkdir(parents=True)
    ended = two_nodes(tmp, "half", lambda node: [*runs["common"], "--output", disks[node], "--batch-size", 2,
                                                 "--resume"], succeed=False)
    for code, err in ended:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code != 0 and len(errors) == 1, err[-2000:]
        assert "every process must find the same checkpoint" in errors[0], errors
        assert checkpoint in errors[0] and "no checkpoint" in errors[0], errors
