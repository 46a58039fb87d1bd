"""The reports where learners work: a real notebook, executed by a Jupyter kernel (nbclient +
ipykernel), whose cells end with ``check_ops(...)`` and ``check_network(...)``; the HTML they display
is read back from the executed notebook. Skipped, with the install hint, without nbclient/ipykernel."""

from __future__ import annotations

import sys
import textwrap

import pytest

from .conftest import ROOT

nbformat = pytest.importorskip("nbformat", reason="pip install -c constraints.txt 'scratchnet[test]' (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -c constraints.txt 'scratchnet[test]' (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -c constraints.txt 'scratchnet[test]' (ipykernel)")

LEARNER = '''
import numpy as np

def softmax(x):
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)

def softmax_derivative(s):
    return s * (1 - s)

def relu(x):
    return np.maximum(0, x)

def relu_prime(x):
    return (x > 0).astype(float)
'''


def outputs_of(cell) -> tuple[str, str]:
    """(the text/html, the text/plain) a cell displayed as its value."""
    for out in cell.outputs:
        if out.output_type == "execute_result":
            return out.data.get("text/html", ""), out.data.get("text/plain", "")
    raise AssertionError(f"the cell displayed nothing: {cell.outputs}")


def test_notebook_shows_root_causes_as_html(tmp_path):
    cells = [
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                                  f"open('my_nn.py', 'w').write({LEARNER!r})"),
        nbformat.v4.new_code_cell("from scratchnet_reference.byo.ops import check_ops\nimport my_nn\n"
                                  "report = check_ops(my_nn, max_examples=8)\nreport"),
        nbformat.v4.new_code_cell("print(report)"),
        nbformat.v4.new_code_cell(textwrap.dedent("""\
            from scratchnet_reference.conformance.network_check import check_network
            from examples.column_vector_sgd.adapter import make_implementation
            check_network(make_implementation, training=False, dtypes=("float64",))""")),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.kernel_manager_class = "jupyter_client.manager.KernelManager"
    client.km = client.create_kernel_manager()
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute()

    html, plain = outputs_of(notebook.cells[1])
    assert "OpsReport(" not in plain and plain.startswith("how your functions were read"), plain
    assert "1 root cause in my_nn (float64)" in html
    causes, table = html.index("scratchnet-root-causes"), html.index("<table")
    assert causes < table  # the root causes first, then the table
    assert "<b>softmax_backward</b>: softmax&#x27;s derivative taken elementwise" in html
    assert "softmax_backward = lambda z, a, g: g * softmax_derivative(a)" in html  # the copyable reproducer
    assert "relu_prime(x): elementwise" in html and "softmax_backward ← softmax_derivative" in html
    printed = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert "1. softmax_backward: softmax's derivative taken elementwise" in printed

    net_html, net_plain = outputs_of(notebook.cells[3])
    assert "2 root causes in column-vector-sgd" in net_html and "2 root causes in column-vector-sgd" in net_plain
    assert net_html.index("scratchnet-root-causes") < net_html.index("<table")
    assert "sigmoid&#x27;s derivative evaluated at the activation a" in net_html
    # nothing but the learner's own file in their folder (no .hypothesis/, no reports)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["my_nn.py"]
