"""A tiny Keras-like API: ``Sequential(layers)``, ``compile(loss, optimizer)``, ``fit``, ``predict``."""

import numpy as np

from .layers import softmax
from .losses import SoftmaxCrossEntropy


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def step(self, layers):
        for layer in layers:
            for key in layer.params:
                layer.params[key] -= self.lr * layer.grads[key]


class Sequential:
    def __init__(self, layers=None):
        self.layers = list(layers or [])
        self.loss = None
        self.optimizer = None

    def add(self, layer):
        self.layers.append(layer)

    def compile(self, loss, optimizer=None):
        self.loss = loss
        self.optimizer = optimizer or SGD()

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def predict(self, x):
        out = self.forward(x)
        return softmax(out) if isinstance(self.loss, SoftmaxCrossEntropy) else out

    def train_on_batch(self, x, y):
        loss = self.loss(self.forward(x), y)
        self.backward(self.loss.backward())
        self.optimizer.step(self.layers)
        return loss

    def fit(self, x, y, epochs=10, batch_size=32, shuffle=True, verbose=1, seed=None):
        rng = np.random.default_rng(seed)
        history = []
        for epoch in range(epochs):
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            losses = [self.train_on_batch(x[idx], y[idx])
                      for idx in np.array_split(order, max(1, len(x) // batch_size))]
            history.append(float(np.mean(losses)))
            if verbose:
                print(f"epoch {epoch + 1}/{epochs} - loss: {history[-1]:.4f}")
        return history
