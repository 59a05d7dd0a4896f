"""How busy the GPUs are, for people watching a plan: each CUDA device's utilisation and memory
in use, read through NVML (the `nvidia-ml-py` package, an optional extra: `pip install -e
'.[gpu]'`). Without it, only the memory in use, from torch, for the devices this process has
opened already (opening one just to look would cost it a CUDA context). Nothing here is a
diagnostic of a run; it is written to the plan's log, not to any record."""

from __future__ import annotations

NAN = float("nan")


def nvml():
    """pynvml, initialised; None without the package or a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # ImportError, NVMLError (no driver, no device)
        return None


def device_use() -> tuple[dict, ...]:
    """Per visible CUDA device: {"device": "cuda:i", "name", "busy": % of the last sample period
    a kernel ran (NaN unknown), "used" and "total": bytes of device memory}. () without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return ()
    lib = nvml()
    out = []
    for index in range(torch.cuda.device_count()):
        entry = {"device": f"cuda:{index}", "name": "", "busy": NAN, "used": -1, "total": -1}
        if lib is not None:  # each reading on its own: a MIG GPU gives its memory but no utilisation
            try:
                handle = nvml_handle(lib, index)
            except Exception:
                out.append(entry)
                continue
            try:
                memory = lib.nvmlDeviceGetMemoryInfo(handle)
                entry.update(used=int(memory.used), total=int(memory.total))
            except Exception:
                pass
            try:
                entry["busy"] = float(lib.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception:
                pass
            try:
                name = lib.nvmlDeviceGetName(handle)
                entry["name"] = name.decode() if isinstance(name, bytes) else str(name)
            except Exception:
                pass
        elif torch.cuda.is_initialized() and opened(index):
            free, total = torch.cuda.mem_get_info(index)
            entry.update(name=torch.cuda.get_device_name(index), used=int(total - free), total=int(total))
        out.append(entry)
    return tuple(out)


def opened(index: int) -> bool:
    """Whether this process has a CUDA context on device `index` already (asking for its memory
    would otherwise make one: some 500 MB of a GPU another process may be using)."""
    import torch

    has_context = getattr(torch._C, "_cuda_hasPrimaryContext", None)
    if has_context is not None:
        return bool(has_context(index))
    return torch.cuda.memory_reserved(index) > 0


def nvml_handle(lib, index: int):
    """NVML's handle of torch's device `index` (CUDA_VISIBLE_DEVICES may renumber: matched by UUID)."""
    import torch

    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        return lib.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except Exception:
        return lib.nvmlDeviceGetHandleByIndex(index)


def peak_memory(device) -> dict:
    """What a run's record keeps of its device: the peak of memory its tensors held (bytes)."""
    import torch

    if getattr(device, "type", "") != "cuda":
        return {}
    return {"peak_device_memory": int(torch.cuda.max_memory_allocated(device))}
