"""cli.py: the console script's exit codes, one-line errors, --debug, user errors against internal ones."""

import os
import subprocess
import sys

import pytest

from roberta_prelayernorm.cli import main
from training_utils import data, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


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
