"""pool_bugs.py — convolution and max pooling, written late at night. Two mistakes planted: the
convolution's stride is off by one (stride + 1), and the max-pool gradient goes to every tied
maximum of a window."""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride = conv_param["stride"] + 1                    # PLANTED: 0-based vs 1-based confusion
    pad = conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Hout, Wout = 1 + (H + 2 * pad - HH) // stride, 1 + (W + 2 * pad - WW) // stride
    out = np.empty((N, F, Hout, Wout))
    for i in range(Hout):
        for j in range(Wout):
            win = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", win, w) + b
    return out, (x, w, b, conv_param)


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    out = np.empty((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, out, pool_param)


def max_pool_backward_naive(dout, cache):
    x, out, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
            is_max = win == out[:, :, i:i + 1, j:j + 1]     # PLANTED: every tied maximum
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += is_max * dout[:, :, i:i + 1, j:j + 1]
    return dx
