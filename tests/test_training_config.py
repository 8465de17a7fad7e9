"""training/config.py: TrainingConfig's sections, each a help group checking its own values; flags given."""

import pytest

from roberta_prelayernorm.training import Trainer
from training_utils import config


@pytest.mark.usefixtures("one_thread")
def test_bad_settings_are_named(tmp_path, tiny):
    with pytest.raises(ValueError, match="precision='fp8' is not allowed: one of fp32, bf16, fp16"):
        Trainer(config(tmp_path, "masked-lm", tiny, precision="fp8"))
    with pytest.raises(ValueError, match="warmup_ratio=1.5 is not allowed: a fraction in"):
        Trainer(config(tmp_path, "masked-lm", tiny, warmup_ratio=1.5))


def test_the_flags_given_are_told_from_the_defaults_and_each_section_is_a_help_group():
    import dataclasses

    from roberta_prelayernorm.cli import build_parser
    from roberta_prelayernorm.training.config import SECTIONS, TASK_OPTIONS, TrainingConfig, given_settings, sections

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    args = train.parse_args(["--task", "masked-lm", "--model", "m", "--train", "t", "--output", "o", "--epochs", "3",
                             "--no-progress"])
    # --epochs equal to its default is still the user's choice (a recipe must not override it)
    assert given_settings(args) == {"task": "masked-lm", "model": "m", "train": "t", "output_dir": "o", "epochs": 3.0,
                                    "progress": False}
    groups = {group.title: [action.dest for action in group._group_actions] for group in train._action_groups}
    declared = []
    for title, section in sections():
        names = [f.name for f in dataclasses.fields(section)]
        assert [dest for dest in groups[title] if dest in names] == names, title  # field order, no machinery
        declared += names
    assert sorted(declared) == sorted(f.name for f in dataclasses.fields(TrainingConfig))  # each field once
    assert len(sections()) == len(SECTIONS) + len(TASK_OPTIONS)


@pytest.mark.parametrize("setting, section", [
    ({"seed": -1}, "RunSettings"), ({"max_length": 0}, "DataSettings"), ({"warmup_ratio": 1.0}, "ScheduleSettings"),
    ({"adam_beta1": 1.0}, "OptimizerSettings"), ({"log_every": 0}, "LoggingSettings"),
    ({"mlm_probability": 1.0}, "MaskedLMOptions")])
def test_each_section_checks_its_own_settings(setting, section):
    from roberta_prelayernorm.training import config as config_module

    config = config_module.TrainingConfig(task="masked-lm", output_dir="o", **setting)
    with pytest.raises(ValueError, match=f"{next(iter(setting))}="):
        config.check()
    owner = getattr(config_module, section, None) or next(o for o in config_module.TASK_OPTIONS
                                                          if o.__name__ == section)
    with pytest.raises(ValueError, match=f"{next(iter(setting))}="):
        owner.check(config, config.max_length) if section.endswith("Options") else owner.check(config)
