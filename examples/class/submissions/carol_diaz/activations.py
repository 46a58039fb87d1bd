"""Activation functions and their derivatives (Assignment 2)."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_derivative(s):
    # s = sigmoid(x)
    return sigmoid(s) * (1.0 - sigmoid(s))


def relu(x):
    return np.maximum(x, 0.0)


def relu_derivative(x):
    return (x > 0).astype(float)


def softmax(x):
    x = x - np.max(x, axis=1, keepdims=True)
    e = np.exp(x)
    return e / np.sum(e, axis=1, keepdims=True)


def softmax_grad(s, upstream):
    dot = np.sum(upstream * s, axis=1, keepdims=True)
    return s * (upstream - dot)
