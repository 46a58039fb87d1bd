import numpy as np

# cache every hidden activation of the whole data set up front
ACTIVATION_CACHE = np.zeros((60000, 60000))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))
