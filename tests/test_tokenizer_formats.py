"""tokenizer/formats.py: tokenizer files that are truncated or of the wrong shape are named."""

import json

import pytest

import roberta_prelayernorm as rp

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.json", "merges.txt"])
def test_a_truncated_tokenizer_file_is_named(tmp_path, tiny, name):
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(tiny, folder)
    if name != "tokenizer.json":
        (folder / "tokenizer.json").unlink()
    text = (folder / name).read_text(encoding="utf-8")
    (folder / name).write_text(text[:len(text) // 2].rsplit("\n", 1)[0] + ("\n#\nx" if name == "merges.txt" else ""),
                               encoding="utf-8")
    with pytest.raises(ValueError, match=f"cannot read tokenizer file .*{name}"):
        rp.AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("content, message", [
    ([1, 2], "tokenizer_config.json must hold a JSON object, got list"),
    ({"model_max_length": "512"}, "tokenizer_config.json: model_max_length must be a positive int, got str '512'"),
    ({"added_tokens_decoder": [1]}, 'tokenizer_config.json: added_tokens_decoder must be an object of {"id": token}'),
    ({"tokenizer_class": 5}, "tokenizer_config.json: tokenizer_class must be a class name, got int 5"),
    ({"bos_token": 5}, "tokenizer_config.json: bos_token must be a token"),
])
def test_tokenizer_config_of_the_wrong_shape_is_named(tiny, tmp_path, content, message):
    import shutil

    folder = tmp_path / "tokenizer"
    shutil.copytree(tiny, folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(content))
    with pytest.raises(ValueError) as caught:
        rp.AutoTokenizer.from_pretrained(str(folder))
    assert message in str(caught.value) and str(folder) in str(caught.value)
