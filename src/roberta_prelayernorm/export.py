"""`roberta-prelayernorm export`: a model folder to ONNX, checked against PyTorch in onnxruntime.

    roberta-prelayernorm export --model out/sst2/best --output onnx/sst2 [--int8] [--opset 18]

OUT/model.onnx takes input_ids and attention_mask (and token_type_ids when the model has more than one token
type), all (batch, sequence) or, for multiple choice, (batch, choices, sequence) with every dimension dynamic,
and returns the head's fields under their names (logits; start_logits and end_logits; last_hidden_state and
pooler_output). The config and tokenizer are copied beside it. The folder is written beside OUT and renamed
into place, so OUT is either absent or complete. Needs the `onnx` extra (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .errors import SettingError
from .files import atomic_folder, check_new_folder, copy_tokenizer

# The fields each head's ONNX graph returns, in order.
OUTPUT_FIELDS = {
    "RobertaPreLayerNormModel": ("last_hidden_state", "pooler_output"),
    "RobertaPreLayerNormForQuestionAnswering": ("start_logits", "end_logits"),
}


def load_model(folder: str):
    """The model class config.json names (architectures[0]), loaded in float32 for export."""
    import roberta_prelayernorm as rp

    config = rp.RobertaPreLayerNormConfig.from_pretrained(folder)
    name = (config.architectures or ["RobertaPreLayerNormModel"])[0]
    if not name.startswith("RobertaPreLayerNorm") or not hasattr(rp, name):
        raise SettingError(f"{folder}/config.json names architecture {name!r}, which this package does not have")
    return getattr(rp, name).from_pretrained(folder)


def input_names(model) -> list[str]:
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if model.config.type_vocab_size > 1 else [])


def output_names(model) -> tuple[str, ...]:
    return OUTPUT_FIELDS.get(type(model).__name__, ("logits",))


def example_inputs(model, lengths, seed: int = 0) -> dict:
    """Right-padded random token ids of the given lengths (B, T), or (B, 2, T) for multiple choice."""
    import torch

    g = torch.Generator().manual_seed(seed)
    config, T = model.config, max(lengths)
    ids = torch.randint(3, config.vocab_size, (len(lengths), T), generator=g)
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).long()
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    if type(model).__name__.endswith("ForMultipleChoice"):
        batch = {key: torch.stack([value, value.flip(0)], dim=1) for key, value in batch.items()}
    return {name: batch[name] for name in input_names(model)}


def exportable(model):
    """The model as a module of (input_ids, attention_mask[, token_type_ids]) returning its head's fields."""
    import torch

    fields = output_names(model)
    decoder = {"use_cache": False} if model.config.is_decoder else {}

    class Exportable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             return_dict=True, **decoder)
            return tuple(out[name] for name in fields)

    return Exportable().eval()


def export_onnx(model, path: str, opset=None) -> None:
    """Write `model` to the ONNX file `path` with dynamic batch, (choices) and sequence dimensions."""
    import torch

    batch = example_inputs(model, lengths=(8, 5))
    rank = batch["input_ids"].dim()
    dims = [torch.export.Dim("batch", min=1), torch.export.Dim("sequence", min=2,
                                                               max=model.config.max_position_embeddings - 2)]
    if rank == 3:
        dims.insert(1, torch.export.Dim("choices", min=1))
    shapes = tuple({i: dim for i, dim in enumerate(dims)} for _ in batch)
    with warnings.catch_warnings():
        # Every input shares these Dims; torch says once per input that it names the axis after the first one.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        program = torch.onnx.export(exportable(model), tuple(batch.values()), dynamo=True, dynamic_shapes=shapes,
                                    input_names=list(batch), output_names=list(output_names(model)),
                                    opset_version=opset, external_data=False, verbose=False)
    program.save(path)


def largest_difference(model, path: str) -> float:
    """Max |onnxruntime - PyTorch| over real tokens of padded batches of other shapes than the export's."""
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, lengths in enumerate([(3, 11, 7), (16,), (4, 4, 9, 2, 13)]):
        batch = example_inputs(model, lengths, seed=seed)
        with torch.no_grad():
            expected = exportable(model)(*batch.values())
        got = session.run(list(output_names(model)), {k: v.numpy() for k, v in batch.items()})
        real = batch["attention_mask"].bool()
        for ours, theirs in zip(got, expected):
            ours = torch.from_numpy(ours)
            if theirs.shape[:real.dim()] == real.shape:  # per-token: padding positions are not compared
                ours, theirs = ours[real], theirs[real]
            worst = max(worst, (ours - theirs).abs().max().item())
    return worst


def quantize_int8_onnx(source: str, target: str) -> None:
    """Dynamic int8 quantization that computes the same on every x86 CPU.

    ONNX Runtime multiplies u8 activations by s8 weights. Its AVX2 kernels (VPMADDUBSW) add each adjacent pair
    of products into a saturating int16, so 255 x (|w0| + |w1|) above 32767 is clipped (ONNX Runtime's
    quantization guide names reduce_range or U8U8 as the cure); VNNI kernels accumulate in int32 and never clip.
    With reduce_range the weights are 7-bit (|w| <= 64): 255 x 128 = 32640 fits, so no pair can saturate. Per
    output channel scales give back the bit reduce_range takes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(source, target, weight_type=QuantType.QInt8, reduce_range=True, per_channel=True)


def cpu_features() -> str:
    """The CPU and the x86 features that choose ONNX Runtime's int8 kernels, e.g. "AMD EPYC 9R14: avx2 yes,
    avx512_vnni yes, avx_vnni no"."""
    import platform

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the name alone
        return name
    return f"{name}: " + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}"
                                   for flag in ("avx2", "avx512_vnni", "avx_vnni"))


def export_folder(model_dir: str, output: str, int8: bool = False, opset=None) -> dict:
    """model.onnx (+ model_int8.onnx), config and tokenizer into `output`; the largest differences from PyTorch."""
    check_new_folder(output)
    model = load_model(model_dir)
    with atomic_folder(output, replace=False) as tmp:  # a new folder filled beside; an empty one, inside
        export_onnx(model, os.path.join(tmp, "model.onnx"), opset=opset)
        differences = {"model.onnx": largest_difference(model, os.path.join(tmp, "model.onnx"))}
        if int8:
            quantize_int8_onnx(os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model_int8.onnx"))
            differences["model_int8.onnx"] = largest_difference(model, os.path.join(tmp, "model_int8.onnx"))
        model.config.save_pretrained(tmp)
        copy_tokenizer(model_dir, tmp)
    return differences


EXAMPLES = """examples:
  # export a fine-tuned classifier and check it in onnxruntime
  roberta-prelayernorm export --model out/sst2/best --output onnx/sst2

  # also write an int8 (dynamically quantized) model_int8.onnx
  roberta-prelayernorm export --model out/sst2/best --output onnx/sst2-int8 --int8

output: OUT/model.onnx (inputs input_ids, attention_mask[, token_type_ids]; outputs named after the head's
fields; batch and sequence dynamic), OUT/config.json and the tokenizer files. Needs: pip install
'roberta-prelayernorm[onnx]'.
"""


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model folder to ONNX and check it against PyTorch in onnxruntime",
        description="Export a model folder (config.json + weights) to ONNX with dynamic batch and sequence "
                    "length, then run it in onnxruntime on padded batches of other shapes and print the largest "
                    "difference from PyTorch.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    parser.add_argument("--model", required=True, help="model folder (or hub id) to export")
    parser.add_argument("--output", required=True, help="new output folder")
    parser.add_argument("--int8", action="store_true",
                        help="also write model_int8.onnx (dynamic int8 quantization, 7-bit weights: accurate on "
                             "every x86 CPU, with or without VNNI)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: torch's)")
    parser.set_defaults(func=run)


def run(args) -> int:
    try:
        import onnxruntime  # noqa: F401  (checked first: a missing extra is the likeliest error)
        import onnxscript  # noqa: F401
    except ImportError as err:
        print(f"error: export needs the onnx extra ({err.name} is missing): pip install 'roberta-prelayernorm[onnx]'",
              file=sys.stderr)
        return 2
    differences = export_folder(args.model, args.output, int8=args.int8, opset=args.opset)  # errors: cli.main
    import onnxruntime

    note = ("; model_int8.onnx has 7-bit weights, so CPUs without VNNI (AVX2 only: their int8 kernels saturate "
            "pairs of products at int16) compute the same integer products" if args.int8 else "")
    print(f"checked in onnxruntime {onnxruntime.__version__} on {cpu_features()}{note}")
    for name, difference in differences.items():
        print(f"{os.path.join(args.output, name)}: largest difference from PyTorch {difference:.2e}")
    return 0
