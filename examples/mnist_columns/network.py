# A neural network for MNIST digits with numpy only, no tensorflow / pytorch.
#
#   input layer: 784 pixels (28x28 image, flattened)
#   hidden layer: 30 neurons, ReLU
#   output layer: 10 neurons (digits 0-9), softmax
#
# Every example is a COLUMN of X, so X is (784, m) and the labels Y are (m,) digits.
# Forward:   Z1 = W1.X + b1,  A1 = ReLU(Z1),  Z2 = W2.A1 + b2,  A2 = softmax(Z2)
# Backward:  dZ2 = A2 - Y (softmax + cross entropy), then the chain rule down to W1.
import numpy as np


class TwoLayerNet:
    def __init__(self):
        self.W1 = np.random.rand(30, 784) - 0.5
        self.b1 = np.random.rand(30, 1) - 0.5
        self.W2 = np.random.rand(10, 30) - 0.5
        self.b2 = np.random.rand(10, 1) - 0.5

    def ReLU(self, Z):
        return np.maximum(Z, 0)

    def ReLU_deriv(self, Z):
        return Z > 0

    def softmax(self, Z):
        expZ = np.exp(Z - np.max(Z, axis=0))  # subtract the max so exp does not overflow
        return expZ / np.sum(expZ, axis=0)

    def one_hot(self, Y):
        one_hot_Y = np.zeros((Y.size, 10))
        one_hot_Y[np.arange(Y.size), Y] = 1
        return one_hot_Y.T

    def forward(self, X):
        self.Z1 = self.W1.dot(X) + self.b1
        self.A1 = self.ReLU(self.Z1)
        self.Z2 = self.W2.dot(self.A1) + self.b2
        self.A2 = self.softmax(self.Z2)
        return self.A2

    def cost(self, Y):
        m = Y.size
        one_hot_Y = self.one_hot(Y)
        # PLANTED: epsilon inside the log "to avoid log(0)"
        return -np.sum(one_hot_Y * np.log(self.A2 + 1e-8)) / m

    def backward(self, X, Y):
        m = Y.size
        one_hot_Y = self.one_hot(Y)
        dZ2 = self.A2 - one_hot_Y
        self.dW2 = 1 / m * dZ2.dot(self.A1.T)
        self.db2 = 1 / m * np.sum(dZ2)  # PLANTED: summed over everything, not over the examples
        dZ1 = self.W2.T.dot(dZ2) * self.ReLU_deriv(self.Z1)
        self.dW1 = 1 / m * dZ1.dot(X.T)
        self.db1 = 1 / m * np.sum(dZ1)  # PLANTED, the same mistake in the hidden layer

    def update_params(self, alpha):
        self.W1 = self.W1 - alpha * self.dW1
        self.b1 = self.b1 - alpha * self.db1
        self.W2 = self.W2 - alpha * self.dW2
        self.b2 = self.b2 - alpha * self.db2

    def gradient_descent(self, X, Y, alpha, iterations):
        for i in range(iterations):
            self.forward(X)
            self.backward(X, Y)
            self.update_params(alpha)
            if i % 10 == 0:
                predictions = np.argmax(self.A2, 0)
                print("Iteration:", i, "cost:", self.cost(Y), "accuracy:", np.mean(predictions == Y))
