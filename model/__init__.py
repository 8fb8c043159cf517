"""The sentiment model: network, training, scoring, explanations.

One text, one score (docs/model.md): on CPUs with AMX (Intel Sapphire Rapids and later) oneDNN picks its bf16
matrix kernels by the batch's row count, and a text's bf16 probabilities moved by up to 1.3e-3 between scored alone
and in a batch of 50 (measured 2026-12-06 on a Xeon with AMX; 0 with AVX512-BF16 kernels). oneDNN reads its
instruction-set cap once, at its first kernel, so it is set here, when the model package is imported and before any
kernel runs. Set `ONEDNN_MAX_CPU_ISA` yourself (for example to `ALL`) to lift it and accept batch-dependent bf16
results for AMX's speed.
"""

import os

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
