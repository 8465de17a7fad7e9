"""transformers' Trainer with this package's models: change one import line.

    from roberta_prelayernorm.integrations import Trainer   # instead of: from transformers import Trainer

transformers' own Trainer trains, checkpoints and resumes these models, but saves only what it knows how to
save: a model that is not its `PreTrainedModel` gets a bare state dict (no config.json, so the folder loads
nowhere), and it pads by default only with its own tokenizer classes. This subclass saves checkpoints and the
final model with the model's own save_pretrained (config.json, tied weights stored once, loadable here and in
transformers) and pads with this package's tokenizer when no collator is given; training, mixed precision
(bf16=True, fp16=True) and resume_from_checkpoint are transformers' unchanged. Importing this module imports
transformers.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import transformers

from .checkpoint import PreTrainedMixin
from .files import atomic_folder
from .tokenizer import RobertaPreLayerNormTokenizer


class Trainer(transformers.Trainer):
    """transformers.Trainer that saves this package's models with save_pretrained (see the module docstring)."""

    def __init__(self, model=None, args=None, data_collator=None, *rest, processing_class=None, **kwargs):
        # transformers pads by default only for its own tokenizer classes (an isinstance check); this package's
        # tokenizer gets the same default: DataCollatorWithPadding.
        tokenizer = processing_class if processing_class is not None else kwargs.get("tokenizer")
        if data_collator is None and isinstance(tokenizer, RobertaPreLayerNormTokenizer):
            data_collator = transformers.DataCollatorWithPadding(tokenizer)
        super().__init__(model, args, data_collator, *rest, processing_class=processing_class, **kwargs)

    def _save(self, output_dir: Optional[str] = None, state_dict=None) -> None:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not isinstance(model, PreTrainedMixin):  # a PEFT or transformers model: transformers knows it
            return super()._save(output_dir, state_dict=state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        with atomic_folder(output_dir, replace=False) as folder:  # together; the folder itself written into, kept
            model.save_pretrained(folder, state_dict=state_dict, safe_serialization=self.args.save_safetensors)
            tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
            torch.save(self.args, os.path.join(folder, transformers.trainer.TRAINING_ARGS_NAME))
