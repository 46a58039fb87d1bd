import numpy as np


def predict(network, input):
    output = input
    for layer in network:
        output = layer.forward(output)
    return output


def train(network, loss, loss_prime, x_train, y_train, epochs=1000, learning_rate=0.01, verbose=True):
    for e in range(epochs):
        error = 0
        for x, y in zip(x_train, y_train):
            # forward
            output = predict(network, x)

            # error (only for display)
            error += loss(y, output)

            # backward: every layer updates its own parameters
            grad = loss_prime(y, output)
            for layer in reversed(network):
                grad = layer.backward(grad, learning_rate)

        error /= len(x_train)
        if verbose:
            print(f"{e + 1}/{epochs}, error={error}")


if __name__ == "__main__":
    from .activations import Tanh
    from .layers import Dense
    from .losses import mse, mse_prime

    # XOR
    X = np.reshape([[0, 0], [0, 1], [1, 0], [1, 1]], (4, 2, 1))
    Y = np.reshape([[0], [1], [1], [0]], (4, 1, 1))
    network = [Dense(2, 3), Tanh(), Dense(3, 1), Tanh()]
    train(network, mse, mse_prime, X, Y, epochs=10000, learning_rate=0.1)
    for x, y in zip(X, Y):
        print(x.ravel(), "->", predict(network, x).ravel(), "expected", y.ravel())
