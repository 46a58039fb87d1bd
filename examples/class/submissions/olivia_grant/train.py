import sys

import numpy as np

if len(sys.argv) < 3:
    print("usage: python train.py DATA EPOCHS")
    sys.exit(1)

DATA, EPOCHS = sys.argv[1], int(sys.argv[2])


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_backward(z, a, g):
    return g * a * (1 - a)
