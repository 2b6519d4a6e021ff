"""The rating head's folded form (``many``: the preference layer folded into the rating network's
first layer, for one user's many items) gives the plain form's ratings, with and without the item
bias and taste columns, and after a local step changed every head parameter."""
import pytest
import torch
from torch.func import functional_call

from mamo_l2l.models.recommender import RatingHead


@pytest.mark.parametrize("item_bias, taste_dim", [(False, 0), (True, 0), (True, 5)])
def test_folded_form_equals_the_plain_form(item_bias, taste_dim):
    torch.manual_seed(0)
    head = RatingHead(user_dim=12, item_dim=20, embed_dim=8, hidden=16, rating_mean=3.5,
                      item_bias=item_bias, taste_dim=taste_dim)
    p_u, p_i = torch.randn(12), torch.randn(300, 20)
    # moved parameters (as a local step leaves them), the taste vector included
    params = {n: p + 0.3 * torch.randn_like(p) for n, p in head.named_parameters()}
    plain = functional_call(head, params, (p_u, p_i))
    folded = functional_call(head, params, (p_u, p_i), {"many": True})
    assert plain.shape == folded.shape == (300,)
    assert plain.std() > 0.1                               # items really differ
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=1e-5)
