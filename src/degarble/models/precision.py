"""Numeric precision for running the models on a CPU: ``fp32``, ``bf16`` or ``int8``.

* ``fp32``: the weights as trained; the reference.
* ``bf16``: bf16 autocast, where the CPU has native bf16 matrix units (AVX512-BF16 / AMX); there it
  about doubles speed for the same scores. On other CPUs bf16 is emulated and many times slower.
* ``int8``: opt-in, for throughput over quality. Most linear layers' weights are quantized to int8
  once at load time and their inputs on the fly (PyTorch dynamic quantization). On an AVX2-only CPU
  it detects 1.3 to 1.4 times as fast as fp32 and restores 1.2 times. Its scores run a little
  lower, so a bundle may carry thresholds calibrated for it (``detector.by_precision.int8``); with
  them the shipped bundle loses at most 2.1 points of BBC paragraph recall and 1.6 of span and
  edit quality against fp32, and 3.5 points of paragraph recall on the real dev article
  (``eval/README.md``). Its input scale is one per batch, so a text's scores also move slightly
  with what it is batched with.

``auto`` (the default) takes ``bf16`` where the CPU runs it natively, else ``fp32``. Choose with
``degarble.load(..., precision=...)``, ``--precision`` on the command line, or ``$DEGARBLE_PRECISION``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

RESOLVED = ("fp32", "bf16", "int8")  # what a model runs in
PRECISIONS = ("auto", *RESOLVED)  # what may be asked for
ENV_VAR = "DEGARBLE_PRECISION"
#: ``--precision`` help, shared by every command that loads a model
PRECISION_HELP = ("how the model computes: auto (bf16 on a CPU with native bf16, else fp32), fp32 (as trained), "
        "bf16 or int8 (faster, slightly lower scores; default: $DEGARBLE_PRECISION, else auto)")


def cpu_has_bf16() -> bool:
    """True where the CPU runs bf16 matrix work natively (AVX512-BF16 / AMX); else fp32 is faster.

    There bf16 autocast about doubles training speed; on an AVX2-only CPU it is emulated and many
    times slower than fp32 (``training/README.md``), so inference and training default to this.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def requested_precision(precision: str | None = None) -> str:
    """The precision asked for, checked but not resolved (no torch import): ``precision``, else
    ``$DEGARBLE_PRECISION``, else ``auto``. Raises ``ValueError`` naming the choices."""
    p = precision if precision is not None else (os.environ.get(ENV_VAR) or "auto")
    p = str(p).strip().lower()
    if p not in PRECISIONS:
        where = f"${ENV_VAR}" if precision is None else "precision"
        raise ValueError(f"unknown {where} {p!r}; choose one of {', '.join(PRECISIONS)}")
    return p


def resolve_precision(precision: str | None = None) -> str:
    """``fp32``, ``bf16`` or ``int8`` for a requested precision (see :func:`requested_precision`):
    ``auto`` is ``bf16`` on a CPU with native bf16, else ``fp32``."""
    p = requested_precision(precision)
    if p == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    if p == "int8" and not int8_available():
        raise ValueError("precision 'int8' needs PyTorch's dynamic quantization with a CPU engine; "
                         "this torch build has none (use fp32)")
    return p


def int8_available() -> bool:
    """True where this torch build has dynamic int8 quantization with a CPU kernel engine."""
    import torch

    quantized = getattr(torch.backends, "quantized", None)
    engines = set(quantized.supported_engines) if quantized is not None else set()
    has_api = hasattr(getattr(getattr(torch, "ao", None), "quantization", None), "quantize_dynamic")
    return has_api and bool(engines & {"x86", "fbgemm", "onednn", "qnnpack"})


def quantize_int8(module):
    """Quantize ``module``'s linear layers to int8 in place (dynamic quantization); returns it.

    Down-projections (more inputs than outputs: a transformer layer's feed-forward output, the
    classifier) stay fp32. Their inputs, the feed-forward's GELU activations, have outliers that one
    int8 scale per tensor cannot hold: on 300 validation paragraphs (medium rate) quantizing every
    linear layer cost the detector 2.6 points of token F1, quantizing all but these 0.3 points.
    The module must be in eval mode and only run inference afterwards; sub-modules called directly
    keep working.
    """
    import torch

    names = {name for name, m in module.named_modules()
             if isinstance(m, torch.nn.Linear) and m.in_features <= m.out_features}
    with warnings.catch_warnings():
        # torch.ao.quantization's eager API is marked for migration to torchao; it is what runs
        # dynamic int8 on a CPU without torch.compile, and the install steps pin torch 2.13.0.
        # Should a later torch drop it, int8_available() turns false and int8 is refused.
        warnings.simplefilter("ignore")
        spec = dict.fromkeys(names, torch.ao.quantization.default_dynamic_qconfig)
        return torch.ao.quantization.quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True)
