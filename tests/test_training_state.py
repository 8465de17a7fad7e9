"""training/state.py: the optimizer's weight-decay groups."""

import pytest
import torch

import roberta_prelayernorm as rp


@pytest.mark.parametrize("head", ["ForMaskedLM", "ForSequenceClassification", "ForTokenClassification",
                                  "ForQuestionAnswering", "ForMultipleChoice", "ForCausalLM"])
def test_weight_decay_goes_where_transformers_module_type_rule_puts_it(head):
    """The decayed parameters are those transformers' get_parameter_names keeps outside LayerNorm modules, less
    biases (its Trainer's rule by module type: lm_head.layer_norm is not decayed, though its name has no
    "LayerNorm"). transformers 4.57's Trainer adds name patterns, one of which ("layernorm") matches this
    model's prefix `roberta_prelayernorm.`: it decays no encoder weight at all. That is not copied."""
    import transformers
    from transformers.trainer_pt_utils import get_parameter_names

    from parity import tiny_config_dict
    from roberta_prelayernorm.training.state import decay_groups

    settings = tiny_config_dict(is_decoder=head == "ForCausalLM", num_labels=2)
    ours = getattr(rp, "RobertaPreLayerNorm" + head)(rp.RobertaPreLayerNormConfig(**settings))
    theirs = getattr(transformers, "RobertaPreLayerNorm" + head)(transformers.RobertaPreLayerNormConfig(**settings))
    names = {id(p): name for name, p in ours.named_parameters()}
    by_type = {name for name in get_parameter_names(theirs, [torch.nn.LayerNorm]) if "bias" not in name}
    decay, no_decay = decay_groups(ours)
    assert {names[id(p)] for p in decay} == by_type & set(names.values())
    assert len(decay) + len(no_decay) == len(names)
    if head == "ForMaskedLM":
        assert {"lm_head.layer_norm.weight", "lm_head.bias"} <= {names[id(p)] for p in no_decay}
        trainer = transformers.Trainer(model=theirs, args=transformers.TrainingArguments("unused", report_to=[]))
        decayed_by_trainer = trainer.get_decay_parameter_names(theirs)  # the prefix matched: no encoder weight
        assert "lm_head.dense.weight" in decayed_by_trainer
        assert not [name for name in decayed_by_trainer if name.startswith("roberta_prelayernorm.")]
