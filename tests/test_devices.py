"""devices.py: a `device` argument naming a device this machine lacks is one line, exit code 2."""

import pytest
import torch

from training_utils import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_device_that_is_not_here_is_one_line(heads, capsys):
    """mps here, and cuda on a machine without CUDA."""
    from roberta_prelayernorm.cli import main

    assert main(["classify", "--model", heads["classify"], "hello", "--device", "mps"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: device='mps': mps is not available here; use 'cpu'" or (
        torch.cuda.is_available() and err.endswith("use 'cpu', 'cuda'"))
    if not torch.cuda.is_available():  # (with CUDA, there is no missing CUDA to name)
        code, _, err = run_cli("classify", "--model", heads["classify"], "hello", "--device", "cuda")
        assert code == 2 and "CUDA is not available" in err
