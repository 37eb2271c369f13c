"""fnn.nn.functional: coarse primitives with hand-written VJPs (dense, conv, pooling, norms,
attention, ...) and activations."""
