"""Simple MLP for MNIST, numpy only.

784 inputs -> 30 hidden (sigmoid) -> 10 outputs (softmax), trained with cross-entropy.
Each row of X is one image: X is (m, 784), Y is one-hot (m, 10).
(fixed: X is left alone, each backward pass assigns its gradients)
"""
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_derivative(a):
    # a is already sigmoid(z)
    return a * (1 - a)


def softmax(z):
    exps = np.exp(z - np.max(z, axis=1, keepdims=True))
    return exps / np.sum(exps, axis=1, keepdims=True)


class MLP:
    def __init__(self, input_size=784, hidden_size=30, output_size=10, learning_rate=0.1):
        self.W1 = np.random.randn(input_size, hidden_size) / np.sqrt(input_size)
        self.b1 = np.zeros((1, hidden_size))
        self.W2 = np.random.randn(hidden_size, output_size) / np.sqrt(hidden_size)
        self.b2 = np.zeros((1, output_size))
        self.learning_rate = learning_rate
        # gradients, kept so they can be plotted
        self.dW1 = np.zeros_like(self.W1)
        self.db1 = np.zeros_like(self.b1)
        self.dW2 = np.zeros_like(self.W2)
        self.db2 = np.zeros_like(self.b2)

    def forward(self, X):
        self.z1 = np.dot(X, self.W1) + self.b1
        self.a1 = sigmoid(self.z1)
        self.z2 = np.dot(self.a1, self.W2) + self.b2
        self.a2 = softmax(self.z2)
        return self.a2

    def compute_loss(self, y):
        m = y.shape[0]
        log_probs = self.z2 - np.max(self.z2, axis=1, keepdims=True)
        log_probs = log_probs - np.log(np.sum(np.exp(log_probs), axis=1, keepdims=True))
        return -np.sum(y * log_probs) / m

    def backward(self, X, y):
        m = X.shape[0]
        delta2 = self.a2 - y
        self.dW2 = np.dot(self.a1.T, delta2) / m
        self.db2 = np.sum(delta2, axis=0, keepdims=True) / m
        delta1 = np.dot(delta2, self.W2.T) * sigmoid_derivative(self.a1)
        self.dW1 = np.dot(X.T, delta1) / m
        self.db1 = np.sum(delta1, axis=0, keepdims=True) / m

    def update(self):
        self.W1 -= self.learning_rate * self.dW1
        self.b1 -= self.learning_rate * self.db1
        self.W2 -= self.learning_rate * self.dW2
        self.b2 -= self.learning_rate * self.db2

    def train(self, X, y, epochs=100):
        for epoch in range(epochs):
            self.forward(X)
            self.backward(X, y)
            self.update()
            if epoch % 10 == 0:
                print(f"Epoch {epoch}: loss {self.compute_loss(y):.4f}")
