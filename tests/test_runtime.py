import logging

import pytest
import torch

import liser.runtime as runtime


@pytest.mark.parametrize(("native", "chosen"), [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_is_bfloat16_only_where_native(monkeypatch, caplog, native, chosen):
    monkeypatch.setattr(runtime, "native_bfloat16", lambda device: native)
    with caplog.at_level(logging.INFO, logger="liser.runtime"):
        assert runtime.resolve_precision("auto", torch.device("cpu")) == chosen
    assert chosen in caplog.text  # the choice is logged
    assert runtime.resolve_precision("float32", torch.device("cpu")) == "float32"  # an explicit value stays


def test_cpu_bfloat16_follows_the_processor(monkeypatch):
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx2": True, "avx512_bf16": False})
    assert not runtime.native_bfloat16(torch.device("cpu"))
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx2": True, "amx_bf16": True})
    assert runtime.native_bfloat16(torch.device("cpu"))


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("cuda")
    assert runtime.resolve_device("cpu") == torch.device("cpu")


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        runtime.resolve_precision("float16", torch.device("cpu"))
