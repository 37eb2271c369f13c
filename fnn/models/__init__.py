"""The model zoo: classic architectures as fnn.nn modules, named as in torchvision.

Each constructor returns an ordinary `fnn.nn.Module` (usual `init` / `apply`); at the standard
ImageNet configuration the parameter counts equal the reference architectures'. Use
`model.init_shapes(spec)` to see shapes and counts without allocating anything.
"""

# --- classic CNNs: lenet, alexnet, vgg, nin, googlenet
from fnn.models.alexnet import alexnet
from fnn.models.googlenet import GoogLeNetOutputs, GoogLeNetWithAux, googlenet
from fnn.models.lenet import lenet5
from fnn.models.nin import nin
from fnn.models.vgg import (vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19,
                            vgg19_bn)
# --- residual and dense networks: resnet, densenet
from fnn.models.densenet import (densenet, densenet121, densenet161, densenet169, densenet201,
                                 densenet_small)
from fnn.models.resnet import (resnet, resnet18, resnet34, resnet50, resnet101, resnet152,
                               resnext50_32x4d, wide_resnet50_2)
# --- transformers: vit, bert, causal decoder
from fnn.models.bert import BERT, bert, bert_base, bert_large, bert_mini, bert_small, bert_tiny
from fnn.models.decoder import CausalTransformer, causal_transformer, generate, gpt, gpt2_small
from fnn.models.vit import (VisionTransformer, vit, vit_b_16, vit_b_32, vit_h_14, vit_l_16, vit_l_32,
                            vit_small, vit_tiny)

__all__ = [
    "lenet5", "alexnet", "vgg", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
    "vgg19", "vgg19_bn", "nin", "googlenet", "GoogLeNetOutputs", "GoogLeNetWithAux",
    "resnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "wide_resnet50_2", "densenet", "densenet121", "densenet161", "densenet169", "densenet201",
    "densenet_small",
    "vit", "vit_tiny", "vit_small", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14",
    "VisionTransformer", "bert", "bert_base", "bert_large", "bert_small", "bert_mini",
    "bert_tiny", "BERT", "causal_transformer", "gpt", "gpt2_small", "generate",
    "CausalTransformer",
]
