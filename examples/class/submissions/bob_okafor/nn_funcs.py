import numpy as np

def sigmoid(z):
    return 1/(1+np.exp(-z))

def sigmoid_backward(z, a, g):
    return g*a*(1-a)

def relu(z):
    return np.where(z>0, z, 0.0)

def relu_backward(z, a, g):
    return g*(z>0)

def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e/e.sum(axis=1, keepdims=True)

def softmax_backward(z, a, g):
    # derivative of softmax is s*(1-s)
    return g*a*(1-a)

def cross_entropy(p, y):
    return -(y*np.log(p)).sum()/p.shape[0]

def cross_entropy_grad(p, y):
    return -y/p/p.shape[0]
