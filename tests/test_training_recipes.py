"""training/recipes.py: --recipe efficient-mlm and the AdamW options: preset values, explicit options winning."""

import pytest

from roberta_prelayernorm.cli import main
from roberta_prelayernorm.training import trainer as trainer_module
from roberta_prelayernorm.training.recipes import recipe_settings

PAPER = dict(adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01, learning_rate=2e-3,
             warmup_ratio=0.06, max_steps=23_000, max_length=128, mlm_probability=0.40, mask_mode="mask",
             max_grad_norm=0.0)


def test_efficient_mlm_settings():
    settings = recipe_settings("efficient-mlm", "masked-lm", {}, batch_size=32, world_size=2, cuda=True)
    assert settings == {**PAPER, "precision": "bf16", "compile": True, "grad_accum": 64}  # 32 x 2 x 64 = 4096
    assert recipe_settings("efficient-mlm", "masked-lm", {}, batch_size=16)["precision"] == "fp32"
    assert recipe_settings("efficient-mlm", "masked-lm", {}, batch_size=16)["compile"] is False
    assert recipe_settings("efficient-mlm", "masked-lm", {"compile": False}, batch_size=16, cuda=True)["compile"] is False
    assert recipe_settings("efficient-mlm", "masked-lm", {}, batch_size=16)["grad_accum"] == 256
    given = {"learning_rate": 1e-3, "grad_accum": 3, "epochs": 1.0}
    settings = recipe_settings("efficient-mlm", "masked-lm", given, batch_size=24)
    assert settings["learning_rate"] == 1e-3 and settings["grad_accum"] == 3 and "max_steps" not in settings
    with pytest.raises(ValueError, match=r"batch_size=24 x 1 processes does not divide its 4096 sequences"):
        recipe_settings("efficient-mlm", "masked-lm", {}, batch_size=24)
    with pytest.raises(ValueError, match="is a masked-lm recipe, but task='token-classification'"):
        recipe_settings("efficient-mlm", "token-classification", {})


class Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch):
    """Run `train` up to building the Trainer and return the TrainingConfig it got."""
    configs = []

    class FakeTrainer:
        def __init__(self, config):
            configs.append(config)
            raise Captured

    monkeypatch.setattr(trainer_module, "Trainer", FakeTrainer)

    def run(*args):
        with pytest.raises(Captured):
            main(["--debug", "train", "--task", "masked-lm", "--model", "m", "--train", "t.jsonl", "--output", "o",
                  "--device", "cpu", *args])
        return configs[-1]

    return run


def test_cli_recipe_and_explicit_options(captured):
    config = captured("--recipe", "efficient-mlm", "--batch-size", "64")
    assert {k: getattr(config, k) for k in PAPER} == PAPER
    assert config.grad_accum == 64 and config.precision == "fp32" and config.batch_size == 64
    config = captured("--recipe", "efficient-mlm", "--batch-size", "64", "--learning-rate", "1e-3",
                      "--adam-beta2", "0.95", "--max-steps", "10", "--max-grad-norm", "1")
    assert (config.learning_rate, config.adam_beta2, config.max_steps, config.max_grad_norm) == (1e-3, 0.95, 10, 1.0)
    assert config.adam_epsilon == 1e-6 and config.mlm_probability == 0.4
    # without a recipe, unset options keep TrainingConfig's defaults, as before
    config = captured("--adam-epsilon", "1e-7")
    defaults = trainer_module.TrainingConfig(task="masked-lm", output_dir="o")
    assert config.adam_epsilon == 1e-7
    for name in ("epochs", "learning_rate", "grad_accum", "weight_decay", "adam_beta1", "adam_beta2",
                 "max_grad_norm", "max_length", "mlm_probability", "mask_mode", "precision", "max_steps"):
        assert getattr(config, name) == getattr(defaults, name), name


def test_adam_options_reach_the_optimizer(tmp_path):
    from training_utils import data, head, make_tiny_model

    tiny = make_tiny_model(str(tmp_path / "tiny"))
    config = trainer_module.TrainingConfig(task="masked-lm", model=tiny, output_dir=str(tmp_path / "out"),
                                           train=head(data("corpus.jsonl"), 8, tmp_path / "t.jsonl"),
                                           adam_beta1=0.8, adam_beta2=0.98, adam_epsilon=1e-6, max_length=64,
                                           progress=False)
    optimizer, _ = trainer_module.Trainer(config)._optimizer(10)
    assert all(g["betas"] == (0.8, 0.98) and g["eps"] == 1e-6 for g in optimizer.param_groups)
    config.adam_beta2 = 1.0
    with pytest.raises(ValueError, match=r"adam_beta2=1.0 is not allowed: a number in \[0, 1\)"):
        config.check()
