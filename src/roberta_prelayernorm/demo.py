"""`roberta-prelayernorm demo`: the whole model family end to end, offline, in seconds.

Trains a small byte-level BPE vocabulary on text that ships with Python, builds a tiny model for every head,
saves it, loads it back (checking the reload is exact), and runs each head on the documentation's example
sentences. The tiny models are untrained: the outputs show the plumbing, not predictions.
"""

from __future__ import annotations

import argparse
import os
import tempfile

REAL_CHECKPOINT = "andreasmadsen/efficient_mlm_m0.40"

SENTENCE = "Hello, my dog is cute"
NER_TEXT = "HuggingFace is a company based in Paris and New York"
QUESTION, CONTEXT = "Who was Jim Henson?", "Jim Henson was a nice puppet"
PROMPT = "In Italy, pizza served in formal settings, such as at a restaurant, is presented unsliced."
CHOICES = ("It is eaten with a fork and a knife.", "It is eaten while held in the hand.")
MASKED = "The capital of France is <mask>."


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="build, save, reload and run every head of a tiny model, offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  roberta-prelayernorm demo --output demo-output",
    )
    parser.add_argument("--output", default=None, help="folder to save the tiny models in (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the tiny models (default 0)")
    parser.set_defaults(func=run)


def corpus() -> list[str]:
    """English text that ships with CPython: the documentation topics pydoc shows."""
    from pydoc_data.topics import topics

    return list(topics.values())


def run(args) -> int:
    import torch

    import roberta_prelayernorm as rp
    from .tokenizer import train_byte_level_bpe

    torch.manual_seed(args.seed)
    output = args.output or tempfile.mkdtemp(prefix="roberta-prelayernorm-demo-")
    print("Training a 2,000-token byte-level BPE vocabulary on Python's bundled documentation...")
    tokenizer = train_byte_level_bpe(corpus(), vocab_size=2000)
    config = dict(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5)
    print(f"Tiny model: {config}\n")

    def build(cls, **extra):
        """Build, save, reload; check the reloaded model is the same, return it."""
        name = cls.__name__
        model = cls(rp.RobertaPreLayerNormConfig(**config, **extra)).eval()
        folder = os.path.join(output, name)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        reloaded = cls.from_pretrained(folder)
        for (key, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(reloaded.state_dict().items())):
            assert torch.equal(a, b), f"{name}: {key} changed in the save/load round trip"
        print(f"== {name}: saved to {folder} and reloaded exactly ({reloaded.num_parameters():,} parameters)")
        return reloaded

    with torch.no_grad():
        model = build(rp.RobertaPreLayerNormModel)
        inputs = tokenizer(SENTENCE, return_tensors="pt")
        out = model(**inputs)
        print(f"   {SENTENCE!r}: last_hidden_state {tuple(out.last_hidden_state.shape)}, "
              f"pooler_output {tuple(out.pooler_output.shape)}")

        labels = {0: "negative", 1: "positive"}
        model = build(rp.RobertaPreLayerNormForSequenceClassification, id2label=labels)
        logits = model(**inputs).logits
        probs = logits.softmax(-1)[0]
        print(f"   {SENTENCE!r} -> {labels[int(logits.argmax())]} (p={probs.max():.3f})")

        model = build(rp.RobertaPreLayerNormForMultipleChoice)
        encoding = tokenizer([PROMPT, PROMPT], list(CHOICES), return_tensors="pt", padding=True)
        logits = model(**{k: v.unsqueeze(0) for k, v in encoding.items()}, labels=torch.tensor([0])).logits
        print(f"   {PROMPT!r}\n   choice scores {[round(x, 3) for x in logits.softmax(-1)[0].tolist()]}")

        tags = {0: "O", 1: "B-ORG", 2: "I-ORG", 3: "B-LOC", 4: "I-LOC"}
        model = build(rp.RobertaPreLayerNormForTokenClassification, id2label=tags)
        inputs = tokenizer(NER_TEXT, add_special_tokens=False, return_tensors="pt")
        predicted = model(**inputs).logits.argmax(-1)[0]
        tokens = tokenizer.convert_ids_to_tokens(inputs.input_ids[0])
        print("   " + " ".join(f"{t}/{tags[int(p)]}" for t, p in zip(tokens, predicted)))

        model = build(rp.RobertaPreLayerNormForQuestionAnswering, num_labels=2)
        inputs = tokenizer(QUESTION, CONTEXT, return_tensors="pt")
        out = model(**inputs)
        start, end = int(out.start_logits.argmax()), int(out.end_logits.argmax())
        answer = tokenizer.decode(inputs.input_ids[0, min(start, end):max(start, end) + 1])
        print(f"   Q: {QUESTION} C: {CONTEXT!r} -> {answer!r}")

        model = build(rp.RobertaPreLayerNormForMaskedLM)
        inputs = tokenizer(MASKED, return_tensors="pt")
        position = int((inputs.input_ids[0] == tokenizer.mask_token_id).nonzero()[0])
        top = model(**inputs).logits[0, position].topk(3).indices.tolist()
        print(f"   {MASKED!r}: top guesses {[tokenizer.decode([t]) for t in top]}")

        model = build(rp.RobertaPreLayerNormForCausalLM, is_decoder=True)
        prompt = tokenizer(SENTENCE, return_tensors="pt")
        generated = model.generate(prompt.input_ids, attention_mask=prompt.attention_mask, max_new_tokens=8)
        print(f"   {SENTENCE!r} + generate(8) -> {tokenizer.decode(generated[0], skip_special_tokens=True)!r}")

    print(
        "\nThese tiny models are untrained: the outputs above show the whole path (tokenizer, every head, "
        "save/load), not real predictions.\nFor real predictions, use the published checkpoint (needs network "
        "once):\n"
        f"  python -c \"from roberta_prelayernorm import AutoTokenizer, AutoModelForMaskedLM; "
        f"t = AutoTokenizer.from_pretrained('{REAL_CHECKPOINT}'); "
        f"m = AutoModelForMaskedLM.from_pretrained('{REAL_CHECKPOINT}')\""
    )
    return 0
