"""The model card (README.md with the hub's YAML metadata) written into every model folder the trainer saves."""

from __future__ import annotations

import json
import os
import re
from typing import Optional

from ..tasks import TASKS

def base_license(base_model: Optional[str]) -> Optional[str]:
    """The `license:` of a local base model's own card, if it has one."""
    path = os.path.join(base_model or "", "README.md")
    if not base_model or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        match = re.match(r"---\n(.*?)\n---", f.read(), re.S)
    found = match and re.search(r"^license:\s*(\S+)\s*$", match.group(1), re.M)
    return found.group(1) if found else None


def model_card(task: str, metric: str, base_model: Optional[str], results: dict) -> str:
    """README.md text: YAML front matter (library, pipeline tag, base model, license, metric) and a short body."""
    meta = {"library_name": "transformers", "tags": ["roberta-prelayernorm"],
            "pipeline_tag": TASKS[task].hub_tag, "base_model": base_model,
            "license": base_license(base_model), "metrics": [metric] if metric != "loss" else None}
    lines = ["---"] + [f"{key}: {json.dumps(value)}" for key, value in meta.items() if value is not None] + ["---"]
    lines += ["", f"# {task} model", "",
              f"A RoBERTa-PreLayerNorm model fine-tuned for {task}"
              + (f" from `{base_model}`" if base_model else "") + " with the roberta-prelayernorm trainer.",
              "It loads with `roberta_prelayernorm` and with `transformers` (same class names)."]
    if results:
        lines += ["", "## Validation results", ""] + [f"- {key}: {value}" for key, value in results.items()]
    return "\n".join(lines) + "\n"
