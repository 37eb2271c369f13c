"""The small part of `cupyx.scipy` the fake CuPy beside it needs (see `special`)."""
