import pytest
import torch

from liser.models.student import Student, StudentConfig


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_matches_the_paper():
    # Table 1 with K_S = 8 (RAVDESS) and K_V = 7 (FERV39k): "# Parameters: 105K"
    assert n_parameters(Student(StudentConfig(speech_classes=8, video_classes=7))) == 105_143


def test_block_shapes_follow_table_1():
    model = Student(StudentConfig(speech_classes=8))
    x = torch.zeros(2, 1, 64, 94)
    shapes = []
    for block in model.conv:
        x = block(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 32, 47), (64, 8, 23), (64, 2, 23)]
    kernels = [block[0].kernel_size for block in model.conv]
    pools = [block[3].kernel_size for block in model.conv]
    assert kernels == [(3, 3), (3, 3), (3, 1)]
    assert pools == [(2, 2), (4, 2), (4, 1)]
    assert model.lstm.hidden_size == 64


@pytest.mark.parametrize("k_s", [6, 8])
def test_heads(k_s):
    model = Student(StudentConfig(speech_classes=k_s, video_classes=7))
    out = model(torch.randn(5, 1, 64, 94))
    assert out.sup.shape == (5, k_s) and out.sd.shape == (5, k_s) and out.vd.shape == (5, 7)
    assert isinstance(model.sup_head, torch.nn.Linear)
    assert [m.out_features for m in model.sd_head if isinstance(m, torch.nn.Linear)] == [32, k_s]
    assert [m.out_features for m in model.vd_head if isinstance(m, torch.nn.Linear)] == [32, 7]
    model.eval()
    torch.testing.assert_close(model.classify(torch.ones(1, 1, 64, 94)), model(torch.ones(1, 1, 64, 94)).sup)


def test_longer_inputs_run_through_the_lstm():
    model = Student(StudentConfig(speech_classes=6))
    assert model(torch.randn(1, 1, 64, 200)).sup.shape == (1, 6)
