"""batchnorm_bugs.py — batch norm as I first wrote it. Two mistakes planted: the backward ignores
that μ and σ² depend on x (dx = dout·γ/σ), and the running variance is the biased one."""
import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    mode, eps, momentum = bn_param["mode"], bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    running_mean, running_var = bn_param["running_mean"], bn_param["running_var"]
    cache = None
    if mode == "train":
        mu, var = np.mean(x, axis=0), np.var(x, axis=0)
        xhat = (x - mu) / np.sqrt(var + eps)
        out = gamma * xhat + beta
        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var = (1 - momentum) * running_var + momentum * var          # PLANTED: biased
        cache = (x, xhat, gamma, var, eps)
    else:
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return out, cache


def batchnorm_backward(dout, cache):
    x, xhat, gamma, var, eps = cache
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx = dout * gamma / np.sqrt(var + eps)        # PLANTED: "the mean and variance are constants"
    return dx, dgamma, dbeta
