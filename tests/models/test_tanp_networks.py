"""TaNP's networks (mamo_l2l/models/tanp.py; docs/models.md, "TaNP"): the set encoders are
masked means, invariant to the order of a set; the decoder is an MLP on [p_u ; p_i ; z] that the
task embedding modulates by FiLM (or gated FiLM), written out by hand here."""
import torch

from mamo_l2l.models.tanp import MIN_SCALE, LatentEncoder, SetEncoder, TaNPDecoder


def _set(n=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, generator=gen), torch.randn(n, 4, generator=gen), torch.rand(n, generator=gen) * 4 + 1


def test_set_encoder_is_a_masked_mean_invariant_to_order_and_padding():
    torch.manual_seed(0)
    enc = SetEncoder(3 + 4 + 1, [6, 5])
    p_u, p_i, y = _set()
    ones = torch.ones(5)
    full = enc(p_u, p_i, y, ones)
    by_hand = enc.net(torch.cat([p_u.expand(5, 3), p_i, y.unsqueeze(-1)], -1)).mean(0)
    assert torch.allclose(full, by_hand, atol=1e-6)
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(enc(p_u, p_i[perm], y[perm], ones), full, atol=1e-6)
    # two padded rows (mask 0, arbitrary content) change nothing
    padded = enc(p_u, torch.cat([p_i, 9 * torch.ones(2, 4)]), torch.cat([y, torch.tensor([5.0, 1.0])]),
                 torch.cat([ones, torch.zeros(2)]))
    assert torch.allclose(padded, full, atol=1e-6)
    assert torch.equal(enc(p_u, p_i, y, torch.zeros(5)), torch.zeros(5))   # an empty set: 0


def test_latent_scale_is_bounded():
    torch.manual_seed(0)
    enc = LatentEncoder(8, 6, 4)
    p_u, p_i, y = _set()
    mean, scale = enc(p_u, 100 * p_i, y, torch.ones(5))
    assert mean.shape == scale.shape == (4,)
    assert bool((scale > MIN_SCALE).all() and (scale < 1).all())


def _decoder_by_hand(dec, p_u, p_i, gated):
    h = torch.cat([p_u.expand(p_i.shape[0], -1), p_i, dec.z.expand(p_i.shape[0], -1)], -1)
    for layer, film in zip(dec.layers, dec.films):
        out = film(dec.task)
        w = layer.out_features
        gamma, beta = out[:w], out[w:2 * w]
        if gated:
            gamma, beta = torch.sigmoid(out[2 * w:3 * w]) * gamma, torch.sigmoid(out[3 * w:]) * beta
        h = torch.relu((1 + gamma) * (h @ layer.weight.T + layer.bias) + beta)
    return (h @ dec.out.weight.T + dec.out.bias).squeeze(-1)


def test_decoder_film_and_gated_film_by_hand():
    p_u, p_i, _ = _set()
    for gated in (False, True):
        torch.manual_seed(1)
        dec = TaNPDecoder(3, 4, z_dim=2, task_dim=5, hidden=8, rating_mean=3.5, gated=gated)
        with torch.no_grad():
            dec.z.copy_(torch.tensor([0.5, -1.0]))
            dec.task.copy_(torch.linspace(-1, 1, 5))
        assert [layer.out_features for layer in dec.layers] == [8, 8, 4]     # hidden, hidden, hidden // 2
        assert torch.allclose(dec(p_u, p_i), _decoder_by_hand(dec, p_u, p_i, gated), atol=1e-6)
        # the task embedding modulates the prediction
        before = dec(p_u, p_i)
        with torch.no_grad():
            dec.task.add_(1.0)
        assert not torch.allclose(dec(p_u, p_i), before)


def test_decoder_without_modulation_starts_at_the_mean_rating():
    dec = TaNPDecoder(3, 4, z_dim=2, task_dim=5, hidden=8, rating_mean=3.5)
    with torch.no_grad():
        dec.out.weight.zero_()
    p_u, p_i, _ = _set()
    assert torch.allclose(dec(p_u, p_i), torch.full((5,), 3.5))
