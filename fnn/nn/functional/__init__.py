"""fnn.nn.functional: coarse primitives with hand-written VJPs (dense, conv, pooling, norms,
attention, ...) and activations. One file per family; each layer in fnn.nn is built on these."""

from fnn.nn.functional.activations import (elu, erf, gelu, hard_sigmoid, hard_swish, hard_tanh,
                                           leaky_relu, log_softmax, mish, relu, relu6, selu,
                                           sigmoid, silu, softmax, softplus, softsign, swish, tanh)
from fnn.nn.functional.attention import (cached_self_attention, causal_mask, multi_head_attention,
                                         scaled_dot_product_attention)
from fnn.nn.functional.conv import conv1d, conv2d, conv_transpose2d
from fnn.nn.functional.dense import dense
from fnn.nn.functional.dropout import dropout
from fnn.nn.functional.embedding import embedding
from fnn.nn.functional.normalization import (batch_norm, batch_norm_inference, batch_stats, running_average,
                                             group_norm, layer_norm)
from fnn.nn.functional.pooling import (adaptive_avg_pool2d, avg_pool1d, avg_pool2d, global_avg_pool,
                                       max_pool1d, max_pool2d)
from fnn.nn.functional.recurrent import gru_sequence, lstm_sequence, rnn_sequence

attention = scaled_dot_product_attention
