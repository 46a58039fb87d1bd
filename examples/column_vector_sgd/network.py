# ruff: noqa: UP004, UP030, UP032  (a stranger's code, kept in its own style)
"""
network.py
~~~~~~~~~~

A feedforward neural network trained by mini-batch stochastic gradient
descent, written while working through chapters 1 and 2 of "Neural Networks
and Deep Learning".  Every sample is a column vector; the gradient of a
mini-batch is accumulated one sample at a time by backpropagation.

Not optimized at all -- the point was to understand backprop.
"""

#### Libraries
import random

import numpy as np


#### The cost
class QuadraticCost(object):

    @staticmethod
    def fn(a, y):
        """Cost of one output ``a`` against the desired output ``y``."""
        return 0.5 * np.linalg.norm(a - y) ** 2  # PLANTED: ½‖a − y‖², the ½ convention and a sum over the outputs

    @staticmethod
    def delta(z, a, y):
        """Error delta of the output layer."""
        return (a - y) * sigmoid_prime(z)


#### The network
class Network(object):

    def __init__(self, sizes, cost=QuadraticCost):
        """``sizes`` holds the number of neurons per layer, e.g. [784, 30, 10]
        for a network with 784 inputs, one hidden layer of 30 neurons and 10
        outputs.  The first layer is the input layer and has no biases."""
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.cost = cost
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) / np.sqrt(x)
                        for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        """Return the output of the network for the input column ``a``."""
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Train with mini-batch stochastic gradient descent.  ``training_data``
        is a list of tuples ``(x, y)`` of column vectors."""
        n = len(training_data)
        for j in range(epochs):
            random.shuffle(training_data)
            mini_batches = [training_data[k:k + mini_batch_size]
                            for k in range(0, n, mini_batch_size)]
            for mini_batch in mini_batches:
                self.update_mini_batch(mini_batch, eta)
            if test_data:
                print("Epoch {0}: {1} / {2}".format(j, self.evaluate(test_data), len(test_data)))
            else:
                print("Epoch {0}: cost {1}".format(j, self.total_cost(training_data)))

    def update_mini_batch(self, mini_batch, eta):
        """One gradient descent step on the average gradient of ``mini_batch``."""
        nabla_b, nabla_w = self.gradient(mini_batch)
        self.weights = [w - eta * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - eta * nb for b, nb in zip(self.biases, nabla_b)]

    def gradient(self, mini_batch):
        """The gradient of the cost averaged over ``mini_batch``."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        m = len(mini_batch)
        return [nb / m for nb in nabla_b], [nw / m for nw in nabla_w]

    def backprop(self, x, y):
        """Return ``(nabla_b, nabla_w)``, the gradient of the cost of the single
        sample ``(x, y)``, layer by layer like ``self.biases`` and ``self.weights``."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        # feedforward, remembering every z and every activation
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        # backward pass
        delta = self.cost.delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        # l = 2 is the second-last layer, l = 3 the one before, ...
        for l in range(2, self.num_layers):
            sp = sigmoid_prime(activations[-l])  # PLANTED: σ' evaluated at the activation a = σ(z), not at z
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return (nabla_b, nabla_w)

    def total_cost(self, data):
        """The average cost over ``data``, a list of ``(x, y)`` column vectors."""
        cost = 0.0
        for x, y in data:
            a = self.feedforward(x)
            cost += self.cost.fn(a, y) / len(data)
        return cost

    def evaluate(self, test_data):
        """How many test inputs ``(x, label)`` the network classifies right."""
        test_results = [(np.argmax(self.feedforward(x)), y) for (x, y) in test_data]
        return sum(int(x == y) for (x, y) in test_results)


#### Miscellaneous functions
def sigmoid(z):
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))
