"""Named training presets: `--recipe NAME` on the command line, `recipe_settings(...)` in Python.

efficient-mlm: the pre-training recipe of "Should You Mask 15% in Masked Language Modeling?" (the
efficient_mlm checkpoints; the large model's settings, after Izsak et al.'s 24-hour BERT): AdamW betas
(0.9, 0.98), eps 1e-6, weight decay 0.01, peak learning rate 2e-3 with 6% warm-up and linear decay, 23,000
updates of 4,096 sequences of 128 tokens, 40% masking with every chosen token replaced by <mask>, no
gradient clipping, bf16 and torch.compile on GPUs.
"""

from __future__ import annotations

from ..errors import SettingError


RECIPES = {
    "efficient-mlm": {
        "task": "masked-lm",
        "sequences_per_update": 4096,
        "settings": dict(adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.01, learning_rate=2e-3,
                         warmup_ratio=0.06, max_steps=23_000, max_length=128, mlm_probability=0.40,
                         mask_mode="mask", max_grad_norm=0.0),
    },
}


def recipe_settings(name: str, task: str, given: dict, batch_size: int = 16, world_size: int = 1,
                    cuda: bool = False) -> dict:
    """TrainingConfig fields of recipe `name`, with the ones in `given` (the user's explicit choices) winning.

    The recipe's sequences per update are reached by gradient accumulation: grad_accum = sequences /
    (batch_size x world_size), unless grad_accum is given.
    """
    if name not in RECIPES:
        raise SettingError(f"recipe={name!r} is not known; use one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if task != recipe["task"]:
        raise SettingError(f"recipe={name!r} is a {recipe['task']} recipe, but task={task!r}")
    settings = dict(recipe["settings"], precision="bf16" if cuda else "fp32", compile=cuda)
    if "epochs" in given:  # the user's length of training instead of the recipe's updates
        settings.pop("max_steps")
    if "grad_accum" not in given:
        sequences, per_micro_batch = recipe["sequences_per_update"], batch_size * world_size
        if sequences % per_micro_batch:
            raise SettingError(f"recipe={name!r}: batch_size={batch_size} x {world_size} processes does not divide "
                               f"its {sequences} sequences per update; use a batch size that does (e.g. 32)")
        settings["grad_accum"] = sequences // per_micro_batch
    return {**settings, **given}
