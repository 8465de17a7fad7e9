"""config.py: config.json in and out, as transformers reads and writes it, and the values it refuses."""

import json
import os

import pytest

import roberta_prelayernorm as rp
from parity import tiny_config_dict

transformers = pytest.importorskip("transformers")


def test_defaults_equal_transformers():
    ours, theirs = rp.RobertaPreLayerNormConfig(), transformers.RobertaPreLayerNormConfig()
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "bos_token_id",
                "eos_token_id", "position_embedding_type", "use_cache", "classifier_dropout", "is_decoder",
                "add_cross_attention", "num_labels", "id2label", "label2id", "problem_type", "architectures",
                "tie_word_embeddings", "output_attentions", "output_hidden_states", "use_return_dict"):
        assert getattr(ours, key) == getattr(theirs, key), key


def test_written_json_equals_transformers(tmp_path):
    kwargs = dict(num_labels=3, hidden_size=64, num_attention_heads=4, is_decoder=True, problem_type="regression",
                  id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2},
                  classifier_dropout=0.2)
    rp.RobertaPreLayerNormConfig(**kwargs).save_pretrained(tmp_path / "ours")
    transformers.RobertaPreLayerNormConfig(**kwargs).save_pretrained(tmp_path / "theirs")
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "config.json").read_text())
    theirs.pop("transformers_version")
    assert ours == theirs


def test_transformers_config_loads_here_with_unknown_keys_kept(tmp_path):
    config = transformers.RobertaPreLayerNormConfig(vocab_size=120, num_labels=4, finetuning_task="sst2")
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["my_custom_key"] = [1, 2]
    data["torch_dtype"] = "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps(data))
    ours = rp.AutoConfig.from_pretrained(tmp_path, num_labels=4, hidden_dropout_prob=0.0)
    assert ours.vocab_size == 120 and ours.num_labels == 4 and ours.id2label[3] == "LABEL_3"
    assert ours.hidden_dropout_prob == 0.0 and ours.my_custom_key == [1, 2] and ours.torch_dtype == "bfloat16"
    ours.save_pretrained(tmp_path / "back")
    back = json.loads((tmp_path / "back" / "config.json").read_text())
    assert back["my_custom_key"] == [1, 2] and back["finetuning_task"] == "sst2"
    assert back["transformers_version"] == data["transformers_version"]  # unknown keys are written back as read
    theirs = transformers.AutoConfig.from_pretrained(tmp_path / "back")
    assert theirs.vocab_size == 120 and theirs.num_labels == 4 and theirs.hidden_dropout_prob == 0.0


def test_num_labels_and_id2label():
    config = rp.RobertaPreLayerNormConfig(num_labels=5)
    assert config.id2label == {i: f"LABEL_{i}" for i in range(5)} and config.label2id["LABEL_4"] == 4
    config = rp.RobertaPreLayerNormConfig(id2label={"0": "a", "1": "b", "2": "c"})
    assert config.num_labels == 3 and config.id2label[2] == "c" and config.label2id == {"a": 0, "b": 1, "c": 2}
    config.num_labels = 2
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1"}


def test_dtype_alias_of_newer_transformers():
    assert rp.RobertaPreLayerNormConfig(dtype="float16").torch_dtype == "float16"


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden_size=30, num_attention_heads=4), "multiple of config.num_attention_heads"),
    (dict(vocab_size=0), "vocab_size must be a positive int"),
    (dict(num_hidden_layers=2.5), "num_hidden_layers"),
    (dict(hidden_dropout_prob=1.5), r"hidden_dropout_prob must be a number in \[0, 1\]"),
    (dict(hidden_act="gelu_fancy"), "hidden_act='gelu_fancy' is not supported"),
    (dict(problem_type="ranking"), "problem_type='ranking'"),
    (dict(add_cross_attention=True), "needs config.is_decoder=True"),
    (dict(position_embedding_type="relative_key"), "position_embedding_type='relative_key'"),
    (dict(layer_norm_eps=-1), "layer_norm_eps must be a positive number"),
    (dict(pad_token_id=70000), "pad_token_id"),
    (dict(num_labels=0), "num_labels must be a positive int"),
    (dict(max_position_embeddings=2), "leaves no room for positions"),
])
def test_impossible_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rp.RobertaPreLayerNormConfig(**kwargs)


def test_config_of_another_model_type_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(ValueError, match="model_type is 'bert'"):
        rp.AutoConfig.from_pretrained(tmp_path)


def test_config_errors_name_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        rp.RobertaPreLayerNormConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta-prelayernorm", "hidden_size": "768"}))
    with pytest.raises(ValueError, match=r"config.json: config.hidden_size must be a positive int, got '768'"):
        rp.RobertaPreLayerNormConfig.from_pretrained(tmp_path)
    with pytest.raises(OSError, match="has no config.json"):
        rp.RobertaPreLayerNormConfig.from_pretrained(tmp_path / "..")


# config.json of andreasmadsen/efficient_mlm_m0.30 as published (saved by transformers 4.25.0.dev0).
EFFICIENT_MLM_CONFIG = {
    "_name_or_path": "/tmp/andreasmadsen/efficient_mlm_m0.30", "architectures": ["RobertaPreLayerNormForMaskedLM"],
    "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "classifier_dropout": None, "eos_token_id": 2,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 1024, "initializer_range": 0.02,
    "intermediate_size": 4096, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
    "model_type": "roberta-prelayernorm", "num_attention_heads": 16, "num_hidden_layers": 24, "pad_token_id": 1,
    "position_embedding_type": "absolute", "torch_dtype": "float32", "transformers_version": "4.25.0.dev0",
    "type_vocab_size": 1, "use_cache": True, "vocab_size": 50265,
}


def test_the_published_checkpoint_config_loads_and_round_trips(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(EFFICIENT_MLM_CONFIG))
    config = rp.AutoConfig.from_pretrained(tmp_path, num_labels=3)
    assert (config.hidden_size, config.num_hidden_layers, config.max_position_embeddings) == (1024, 24, 514)
    assert config.type_vocab_size == 1 and config.layer_norm_eps == 1e-5 and config.num_labels == 3
    config.save_pretrained(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    expected = {k: v for k, v in EFFICIENT_MLM_CONFIG.items() if k != "_name_or_path"}
    expected.update(id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
                    label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2})
    assert written == expected
    assert transformers.AutoConfig.from_pretrained(tmp_path / "out").num_labels == 3


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("field, value, message", [
    ("is_decoder", "false", "config.is_decoder must be true or false, got str 'false'"),
    ("tie_word_embeddings", 0, "config.tie_word_embeddings must be true or false, got int 0"),
    ("hidden_act", 1, "config.hidden_act=1 is not supported"),
    ("vocab_size", 10**12, r"config.vocab_size=1000000000000 is larger than this package builds \(at most 4194304\)"),
    ("num_hidden_layers", 10**9, r"config.num_hidden_layers=1000000000 is larger than this package builds"),
    ("max_position_embeddings", 10**9, "config.max_position_embeddings=1000000000 is larger"),
    ("intermediate_size", 200_000, r"config describes about 1.7e\+12 parameters \(hidden_size=4096, "
                                   r"num_hidden_layers=1000, .*at most 1e\+11\)"),
])
def test_config_json_values_of_the_wrong_type_or_size_are_refused(tmp_path, tiny, field, value, message):
    config = json.loads(open(os.path.join(tiny, "config.json")).read())
    config[field] = value
    if field == "intermediate_size":  # each size allowed, all together a model of 1.7e12 parameters
        config.update(hidden_size=4096, num_attention_heads=32, num_hidden_layers=1000)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        rp.RobertaPreLayerNormConfig.from_pretrained(str(folder))


def test_config_fields_saved_only_when_set_and_transformers_keeps_them(tmp_path):
    import transformers

    config = rp.RobertaPreLayerNormConfig(**tiny_config_dict())
    assert config.sparse_prediction is False and config.sparse_pred_ignore_index == -100
    assert "sparse_prediction" not in json.loads(config.to_json_string())
    config.sparse_prediction = True
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["sparse_prediction"] is True
    assert transformers.RobertaPreLayerNormConfig.from_pretrained(tmp_path).sparse_prediction is True
    assert rp.RobertaPreLayerNormConfig.from_pretrained(tmp_path).sparse_prediction is True
    with pytest.raises(ValueError, match="config.sparse_prediction must be true or false, got 'yes'"):
        rp.RobertaPreLayerNormConfig(sparse_prediction="yes")
    with pytest.raises(ValueError, match="config.sparse_pred_ignore_index must be an int, got 1.5"):
        rp.RobertaPreLayerNormConfig(sparse_pred_ignore_index=1.5)
