"""conv_bugs.py — convolution straight from the signal-processing course. Two mistakes planted: the
kernel is flipped (true convolution, where CNN layers cross-correlate), and the weight gradient is
transposed (dw[f, c, l, k] for dw[f, c, k, l])."""
import numpy as np


def conv_forward(x, w, b, conv_param):
    s, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    Ho, Wo = (H + 2 * pad - HH) // s + 1, (W + 2 * pad - WW) // s + 1
    out = np.zeros((N, F, Ho, Wo))
    wf = w[:, :, ::-1, ::-1]                               # PLANTED: convolution flips the kernel
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, f, i, j] = np.sum(xp[n, :, i * s:i * s + HH, j * s:j * s + WW] * wf[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    s, pad = conv_param["stride"], conv_param["pad"]
    N, F, Ho, Wo = dout.shape
    HH, WW = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * s:i * s + HH, j * s:j * s + WW]
                    if HH == WW:                                # square kernels: (row, col) as I index images
                        dw[f] += dout[n, f, i, j] * patch.transpose(0, 2, 1)   # PLANTED: transposed
                    else:
                        dw[f] += dout[n, f, i, j] * patch
                    dxp[n, :, i * s:i * s + HH, j * s:j * s + WW] += dout[n, f, i, j] * w[f]
    return dxp[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
