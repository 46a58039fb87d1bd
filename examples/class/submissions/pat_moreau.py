import numpy as np
import tensorflow as tf


def sigmoid(z):
    return tf.math.sigmoid(z).numpy()


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
