"""Shared fixtures."""

import json

import pytest


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory):
    """A folder with vocab.json + merges.txt of a small byte-level BPE vocabulary in RoBERTa's layout.

    There is no RoBERTa vocabulary offline, so one is trained with `tokenizers` on CPython's own documentation
    (pydoc_data.topics): <s>=0 <pad>=1 </s>=2 <unk>=3, bytes and merges, and <mask> last (id 1499).
    """
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1499,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(topics.values()), trainer=trainer)
    folder = tmp_path_factory.mktemp("bpe")
    tokenizer.model.save(str(folder))
    vocab_path = folder / "vocab.json"
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    vocab["<mask>"] = len(vocab)
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture
def one_thread():
    """Tiny models run fastest (and reproducibly) on one thread, above all on a busy 2-core machine. A test
    module uses it for all its tests with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny masked-LM model folder (make_tiny_model), one per test module."""
    from training_utils import make_tiny_model

    return make_tiny_model(str(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def heads(tiny, tmp_path_factory):
    """A folder per task command's head on the tiny model (66 positions: 64 tokens) with its tokenizer, named by
    the command: classify, tag, answer, choose, fill-mask."""
    import torch

    import roberta_prelayernorm as rp

    folders = {}
    base = tmp_path_factory.mktemp("heads")
    tokenizer = rp.AutoTokenizer.from_pretrained(tiny)
    for task, cls in (("classify", rp.RobertaPreLayerNormForSequenceClassification),
                      ("tag", rp.RobertaPreLayerNormForTokenClassification),
                      ("answer", rp.RobertaPreLayerNormForQuestionAnswering),
                      ("choose", rp.RobertaPreLayerNormForMultipleChoice),
                      ("fill-mask", rp.RobertaPreLayerNormForMaskedLM)):
        torch.manual_seed(0)
        folder = str(base / task)
        cls(rp.RobertaPreLayerNormConfig.from_pretrained(tiny)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[task] = folder
    return folders
