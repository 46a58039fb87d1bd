import numpy as np


class Network(object):

    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.zeros(y) for y in sizes[1:]]
        self.weights = [np.random.randn(x, y) / np.sqrt(x) for x, y in zip(sizes[:-1], sizes[1:])]

    def sigmoid(self, z):
        return 1.0 / (1.0 + np.exp(-z))

    def sigmoid_prime(self, z):
        return self.sigmoid(z) * (1 - self.sigmoid(z))

    def relu(self, z):
        return np.maximum(z, 0.0)

    def relu_prime(self, z):
        return (z > 0) * 1.0

    def softmax(self, z):
        z = z - np.max(z, axis=1, keepdims=True)
        return np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)

    def softmax_grad(self, s, g):
        return s * g - s * np.sum(s * g, axis=1, keepdims=True)

    def cross_entropy(self, a, y):
        return np.sum(np.nan_to_num(-y * np.log(a))) / a.shape[0]

    def cross_entropy_grad(self, a, y):
        return -y / a / a.shape[0]

    def feedforward(self, a):
        for b, w in zip(self.biases[:-1], self.weights[:-1]):
            a = self.relu(a @ w + b)
        return self.softmax(a @ self.weights[-1] + self.biases[-1])
