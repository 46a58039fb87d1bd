"""``available_devices``: ``["cpu"]``, plus ``"cuda"`` (exactly torch's device name) when torch sees a GPU."""

from __future__ import annotations

from scratchnet_reference.core.torch_import import available_devices, torch_module


def test_cpu_always_and_cuda_by_its_torch_name_when_torch_sees_one(monkeypatch):
    torch = torch_module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert available_devices() == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    devices = available_devices()
    assert devices == ["cpu", "cuda"]
    assert torch.device(devices[1]).type == "cuda"  # a name torch takes for its GPU
