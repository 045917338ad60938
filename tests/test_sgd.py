import pytest
import torch

from transferlab.sgd import SGD


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 5e-4), (0.9, True, 5e-4)])
def test_same_updates_as_torch_optim_sgd(momentum, nesterov, wd):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    b = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    b.load_state_dict(a.state_dict())
    groups = lambda m: [{"params": m[0].parameters(), "lr": 0.01}, {"params": m[2].parameters(), "lr": 0.1}]  # noqa: E731
    ours = SGD(groups(a), momentum=momentum, nesterov=nesterov, weight_decay=wd)
    ref = torch.optim.SGD(groups(b), lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    for step in range(5):
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        ours.set_lr_multiplier(1 / (step + 1))
        for g, base in zip(ref.param_groups, (0.01, 0.1)):
            g["lr"] = base / (step + 1)
        for model, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)


def test_state_round_trip_continues_identically():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(4))
    opt = SGD([{"params": [p], "lr": 0.1}], momentum=0.9)
    p.grad = torch.ones(4)
    opt.step()
    clone = torch.nn.Parameter(p.detach().clone())
    opt2 = SGD([{"params": [clone], "lr": 0.1}], momentum=0.9)
    opt2.load_state_dict(opt.state_dict())
    for param, o in ((p, opt), (clone, opt2)):
        param.grad = torch.full((4,), 0.5)
        o.step()
    assert torch.equal(p, clone)
