#!/usr/bin/env python3
"""Golden fixture for the VGG-16 implementation, computed with PyTorch + torchvision (not by alnrisk).

A reduced-width VGG-16 keeps the fixture small: torchvision's configuration "D" topology with every channel count
divided by 16 ([4, 4, M, 8, 8, M, 16, 16, 16, M, 32, 32, 32, M, 32, 32, 32, M]), adaptive average pooling to
7 x 7, and a classifier Linear(32*7*7, 256) - ReLU - Dropout - Linear(256, 256) - ReLU - Dropout - Linear(256, 2),
with torchvision's parameter names (features.N, classifier.0/3/6). Weights: torch.manual_seed(0), He-normal
(fan_out) for convolutions as torchvision does, He-normal (fan_in) for the linear layers, zero biases plus a small
seeded perturbation so that biases are exercised.

Inputs: two raw crops (float32, rows x columns) taken through the preprocessing of alnrisk's deep module, written
out here as PyTorch does it: min-max to [0, 1], three identical channels, F.interpolate(224 x 224, bilinear,
align_corners=False, antialias=False), ImageNet mean/std.

Run (where torch is installed):  python3 tests/golden/make_vgg_fixture.py tests/data/golden/vgg16_small.safetensors
"""
import sys
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models.vgg import VGG, make_layers

torch.manual_seed(0)
cfg = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]
model = VGG(make_layers(cfg, batch_norm=False), num_classes=2, init_weights=True)
model.classifier = nn.Sequential(
    nn.Linear(32 * 7 * 7, 256), nn.ReLU(True), nn.Dropout(),
    nn.Linear(256, 256), nn.ReLU(True), nn.Dropout(),
    nn.Linear(256, 2),
)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            m.bias.normal_(0.0, 0.01)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            m.bias.normal_(0.0, 0.01)
model.eval()

rows, cols = np.mgrid[0:37, 0:53].astype(np.float32)
crop_a = (1000.0 + 300.0 * np.sin(rows / 5.0) * np.cos(cols / 7.0) + 4.0 * cols).astype(np.float32)
crop_b = np.random.default_rng(1).normal(500.0, 120.0, size=(20, 90)).astype(np.float32)

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def preprocess(crop):
    t = torch.from_numpy(crop)
    t = (t - t.min()) / (t.max() - t.min())
    t = t.view(1, 1, *crop.shape).repeat(1, 3, 1, 1)
    t = F.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    return (t - MEAN) / STD


x = torch.cat([preprocess(crop_a), preprocess(crop_b)], 0).contiguous()
with torch.no_grad():
    pool5 = torch.flatten(model.avgpool(model.features(x)), 1)
    c = model.classifier
    fc6 = c[1](c[0](pool5))
    fc7 = c[4](c[3](fc6))
    logits = c[6](fc7)

tensors = {k: v.detach().contiguous().float() for k, v in model.state_dict().items()}
tensors.update({
    "fixture.crop_a": torch.from_numpy(crop_a),
    "fixture.crop_b": torch.from_numpy(crop_b),
    "fixture.input": x,
    "fixture.pool5": pool5.contiguous(),
    "fixture.fc6": fc6.contiguous(),
    "fixture.fc7": fc7.contiguous(),
    "fixture.logits": logits.contiguous(),
})
save_file(tensors, sys.argv[1], metadata={"torch": torch.__version__, "script": "tests/golden/make_vgg_fixture.py"})
print("saved", sys.argv[1], {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("fixture.")}, torch.__version__)
