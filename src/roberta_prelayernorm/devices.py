"""The one reading of a `device` argument, shared by the pipelines, the trainer and the command line."""

from __future__ import annotations

from .errors import SettingError


def as_device(device):
    """device argument -> torch.device: None/-1/"cpu" the CPU, an int i "cuda:i", or any torch device name."""
    import torch

    if isinstance(device, int) and not isinstance(device, bool):
        device = torch.device("cpu") if device < 0 else torch.device("cuda", device)
    elif isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError:
            pass
    if not isinstance(device, torch.device):
        raise SettingError(f"device={device!r} is not a device: use -1 or 'cpu', a GPU index (0, 1, ...), or 'cuda:0'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingError(f"device={str(device)!r}: CUDA is not available here (no GPU, or torch built without "
                           "CUDA); use 'cpu'")
    backend = getattr(torch, device.type, None)  # torch.mps, torch.xpu...: each says whether it is usable here
    if device.type not in ("cpu", "cuda", "meta") and not getattr(backend, "is_available", lambda: False)():
        usable = "'cpu'" + (", 'cuda'" if torch.cuda.is_available() else "")
        raise SettingError(f"device={str(device)!r}: {device.type} is not available here; use {usable}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SettingError(f"device={str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device
