#!/usr/bin/env python3
"""PyTorch's VGG-16 CPU latency on this machine, for comparison with `cargo bench --bench vgg`.

Same work: torchvision VGG-16 (random weights, 2 classes), 224 x 224, up to the logits, batch 1 and 16, median
of repeated runs after a warm-up, eval mode, torch.inference_mode(); NCHW and channels_last. Needs torch +
torchvision (not installed on the build machine; the numbers in ../shared/docs/crate-notes.md were measured this
way: 327 ms channels_last / 367 ms NCHW at batch 1, 5.0 / 5.9 s at batch 16).

    python3 benches/pytorch_vgg16_cpu.py
"""
import statistics
import time

import torch
from torchvision.models import vgg16

torch.manual_seed(0)
model = vgg16(num_classes=2).eval()
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
print("| layout | batch | latency ms (median) | images/s |\n|---|---|---|---|")
for layout in ("nchw", "channels_last"):
    m = model.to(memory_format=torch.channels_last) if layout == "channels_last" else model
    for batch in (1, 16):
        x = torch.randn(batch, 3, 224, 224)
        if layout == "channels_last":
            x = x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            m(x)
            times = []
            for _ in range(7 if batch == 1 else 3):
                t = time.perf_counter()
                m(x)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"| {layout} | {batch} | {med * 1e3:.1f} | {batch / med:.1f} |")
