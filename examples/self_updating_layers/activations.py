import numpy as np

from .layers import Activation


class Tanh(Activation):
    def __init__(self):
        def tanh(x):
            return np.tanh(x)

        def tanh_prime(x):
            return 1 - np.tanh(x) ** 2

        super().__init__(tanh, tanh_prime)


class Sigmoid(Activation):
    def __init__(self):
        def sigmoid(x):
            return 1 / (1 + np.exp(-x))

        def sigmoid_prime(x):
            s = sigmoid(x)
            return s * (1 - s)

        super().__init__(sigmoid, sigmoid_prime)


class ReLU(Activation):
    def __init__(self):
        def relu(x):
            return np.maximum(0, x)

        def relu_prime(x):
            return (x > 0) * 1.0

        super().__init__(relu, relu_prime)


class Softmax(Activation):
    # softmax is just another activation, its derivative works like sigmoid's
    def __init__(self):
        def softmax(x):
            tmp = np.exp(x - np.max(x))
            return tmp / np.sum(tmp)

        def softmax_prime(x):
            s = softmax(x)
            return s * (1 - s)  # PLANTED: only the diagonal of the Jacobian diag(s) - s s^T, taken elementwise

        super().__init__(softmax, softmax_prime)
