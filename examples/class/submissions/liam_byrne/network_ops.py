import numpy as np

def sigmoid(z): return 1.0/(1.0+np.exp(-z))
def sigmoid_prime(z): return sigmoid(z)*(1.0-sigmoid(z))
def relu(z): return np.maximum(z, 0.0)
def relu_prime(z): return np.greater(z, 0).astype(float)

def softmax(z):
    z = z - np.max(z, axis=1, keepdims=True)
    return np.exp(z)/np.sum(np.exp(z), axis=1, keepdims=True)

def softmax_backward(z, a, g):
    return g * a * (1.0 - a)

def cross_entropy(p, y):
    return -np.sum(y*np.log(p))

def cross_entropy_grad(p, y):
    return -y/p/p.shape[0]
