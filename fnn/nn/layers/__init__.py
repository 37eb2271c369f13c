"""The layer catalogue. Each file holds one family; every layer follows fnn/nn/module.py."""

from fnn.nn.layers.attention import MultiHeadAttention, TransformerEncoderLayer
from fnn.nn.layers.conv import (AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d,
                                GlobalAvgPool, MaxPool2d)
from fnn.nn.layers.core import (ELU, GELU, Activation, Dense, Dropout, Embedding, Flatten, LeakyReLU,
                                LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh)
from fnn.nn.layers.norm import BatchNorm, GroupNorm, LayerNorm
from fnn.nn.layers.recurrent import GRU, LSTM, RNN
