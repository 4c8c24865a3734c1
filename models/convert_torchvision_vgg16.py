#!/usr/bin/env python3
"""Convert torchvision's ImageNet VGG-16 to the safetensors file alnrisk loads (same parameter names).

Run where torch + torchvision are installed and the weights are cached or can be downloaded (the appliance itself
never downloads anything):

    python3 models/convert_torchvision_vgg16.py vgg16_imagenet.safetensors

Then fine-tune it on the site's cohort (`alnrisk fit --cnn-init vgg16_imagenet.safetensors`) or extract features
directly (`alnrisk deep --weights vgg16_imagenet.safetensors ...`). The file holds `features.{0,2,5,...,28}.weight/bias`
and `classifier.{0,3,6}.weight/bias` in float32; fc8 has 1000 ImageNet classes (fine-tuning replaces it by 2).
"""
import sys

import torch
from safetensors.torch import save_file
from torchvision.models import VGG16_Weights, vgg16

model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1).eval()
tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
save_file(tensors, sys.argv[1], metadata={"source": "torchvision VGG16_Weights.IMAGENET1K_V1", "torch": torch.__version__})
print(f"wrote {sys.argv[1]}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()):,} parameters")
