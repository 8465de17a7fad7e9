"""CI interop check with the latest transformers 5.x: a model saved here loads there with the same logits, and back.

Run by `make interop` (which builds the second virtualenv). Three steps, each in the environment that has the
library it needs (transformers 5 and this package are never installed together):

    python .ci/interop.py save-ours DIR          # this package: tiny models + their logits into DIR/ours
    python .ci/interop.py check-and-save DIR     # transformers 5: load DIR/ours, compare, save DIR/theirs
    python .ci/interop.py check-theirs DIR       # this package: load DIR/theirs, compare
"""

import json
import os
import sys

import torch

HEADS = ("RobertaPreLayerNormForMaskedLM", "RobertaPreLayerNormForSequenceClassification")
CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
              max_position_embeddings=40, num_labels=3)
IDS = torch.tensor([[0, 5, 17, 42, 9, 2], [0, 33, 8, 2, 1, 1]])
MASK = (IDS != 1).long()


def logits(model) -> list:
    with torch.no_grad():
        out = model.eval()(input_ids=IDS, attention_mask=MASK).logits
    return (out[MASK.bool()] if out.dim() == 3 else out).tolist()  # per-token logits: real tokens only


def check(library, folder: str) -> None:
    for name in HEADS:
        model = getattr(library, name).from_pretrained(os.path.join(folder, name))
        with open(os.path.join(folder, name, "logits.json")) as f:
            expected = torch.tensor(json.load(f))
        difference = (torch.tensor(logits(model)) - expected).abs().max().item()
        print(f"{library.__name__} {getattr(library, '__version__', '')} loads {folder}/{name}: "
              f"largest logit difference {difference:.2e}")
        assert difference < 1e-5, f"{name}: logits differ by {difference}"


def save(library, folder: str) -> None:
    for seed, name in enumerate(HEADS):
        torch.manual_seed(seed)
        model = getattr(library, name)(library.RobertaPreLayerNormConfig(**CONFIG))
        model.save_pretrained(os.path.join(folder, name))
        with open(os.path.join(folder, name, "logits.json"), "w") as f:
            json.dump(logits(model), f)


def main(step: str, folder: str) -> None:
    if step == "save-ours":
        import roberta_prelayernorm

        save(roberta_prelayernorm, os.path.join(folder, "ours"))
    elif step == "check-and-save":
        import transformers

        check(transformers, os.path.join(folder, "ours"))
        save(transformers, os.path.join(folder, "theirs"))
    elif step == "check-theirs":
        import roberta_prelayernorm

        check(roberta_prelayernorm, os.path.join(folder, "theirs"))
    else:
        sys.exit(f"unknown step {step!r}: save-ours, check-and-save or check-theirs")


if __name__ == "__main__":
    main(*sys.argv[1:])
