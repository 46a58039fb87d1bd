"""batchnorm_bugs_2.py — batch norm from the lecture notes. Two mistakes planted: ε outside the
square root, and the other momentum convention (running = momentum·running + (1 − momentum)·batch)."""
import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    N = x.shape[0]
    rm, rv = bn_param["running_mean"], bn_param["running_var"]
    if mode == "train":
        mu = x.mean(0)
        sd = x.std(0)
        xhat = (x - mu) / (sd + eps)                            # PLANTED: eps outside the root
        rm = momentum * rm + (1 - momentum) * mu                # PLANTED: the other momentum convention
        rv = momentum * rv + (1 - momentum) * x.var(0) * N / (N - 1)   # PLANTED: (the same)
        bn_param["running_mean"], bn_param["running_var"] = rm, rv
        return gamma * xhat + beta, (xhat, gamma, sd + eps)
    return gamma * (x - rm) / (np.sqrt(rv) + eps) + beta, None   # PLANTED: eps outside the root


def batchnorm_backward(dout, cache):
    xhat, gamma, s = cache
    N = dout.shape[0]
    dxhat = dout * gamma
    dx = (N * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (N * s)
    return dx, (dout * xhat).sum(0), dout.sum(0)
