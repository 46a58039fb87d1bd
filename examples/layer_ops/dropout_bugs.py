"""dropout_bugs.py — "vanilla" dropout from an old blog post. Two mistakes planted: the kept units are
not scaled by 1/(1 − p) in training, and the output is scaled by (1 − p) at test time instead
(the backward, consistent with the forward, is not scaled either)."""
import numpy as np


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    rng = np.random.default_rng(dropout_param.get("seed"))
    if mode == "train":
        mask = rng.random(x.shape) > p
        return x * mask, (mask, mode)                     # PLANTED: not scaled by 1/(1 - p)
    return x * (1 - p), (None, mode)                     # PLANTED: scaled at test time


def dropout_backward(dout, cache):
    mask, mode = cache
    return dout * mask if mode == "train" else dout
