"""The normal equations' matrices of the row-wise ridge solves (models/factors.py ``row_grams``):
bitwise the k x k outer products summed through the sparse pattern, for COO and CSR patterns."""
import pytest
import torch

from mamo_l2l.models.factors import row_grams


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_row_grams_equal_the_full_outer_products(dtype, layout):
    torch.manual_seed(0)
    other = torch.randn(400, 9, dtype=dtype)
    dense = (torch.rand(250, 400) < 0.05).to(dtype) * torch.rand(250, 400, dtype=dtype)
    chosen = dense.to_sparse() if layout == "coo" else dense.to_sparse_csr()
    full = (chosen @ (other[:, :, None] * other[:, None, :]).reshape(400, 81)).reshape(250, 9, 9)
    got = row_grams(chosen, other)
    assert got.shape == (250, 9, 9) and got.abs().sum() > 0
    assert torch.equal(got, full)
    assert torch.equal(got, got.transpose(1, 2))
