"""The rating head's batched catalogue form (``RatingHead.catalogue``: the preference layer folded
into the rating network's first layer, every layer one batched product) gives the plain form's
ratings, with and without the item bias and taste columns, with every user's own parameters."""
import pytest
import torch
from torch.func import functional_call, vmap

from mamo_l2l.models.recommender import RatingHead


@pytest.mark.parametrize("item_bias, taste_dim", [(False, 0), (True, 0), (True, 5)])
def test_catalogue_form_equals_the_plain_form_per_user(item_bias, taste_dim):
    torch.manual_seed(0)
    head = RatingHead(user_dim=12, item_dim=20, embed_dim=8, hidden=16, rating_mean=3.5,
                      item_bias=item_bias, taste_dim=taste_dim)
    users, p_u, p_i = 7, torch.randn(7, 12), torch.randn(300, 20)
    # each user's own moved parameters (as the local steps leave them), the taste vector included
    params = {n: p.detach() + 0.3 * torch.randn(users, *p.shape) for n, p in head.named_parameters()}
    with torch.no_grad():
        plain = vmap(lambda prm, pu: functional_call(head, prm, (pu, p_i)))(params, p_u)
        batched = head.catalogue(params, p_u, p_i)
    assert plain.shape == batched.shape == (users, 300)
    assert plain.std(dim=1).min() > 0.1 and (plain[0] - plain[1]).abs().max() > 0.1   # items and users differ
    torch.testing.assert_close(batched, plain, atol=1e-5, rtol=1e-5)
