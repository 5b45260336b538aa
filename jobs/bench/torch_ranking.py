"""Shelf's ranking model in PyTorch, for the side-by-side in `make bench`.

Same architecture as model.RankingModel: logit = <U_u, V_i> + b_i + MLP([U_u, V_i, U_u*V_i]),
MLP 3D -> 64 -> 64 -> 1 with ReLU, BCE with logits, Adam; random ids and labels (throughput only).
Prints one JSON line: {"samples_per_second": ..., "threads": ..., "torch": ...}.
"""
import json
import sys
import time

import torch


def main():
    users, items, dim, batch, steps, threads = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    U = torch.nn.Embedding(users, dim, sparse=True)
    V = torch.nn.Embedding(items, dim, sparse=True)
    b = torch.nn.Embedding(items, 1, sparse=True)
    mlp = torch.nn.Sequential(torch.nn.Linear(3 * dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 1))
    sparse = torch.optim.SparseAdam(list(U.parameters()) + list(V.parameters()) + list(b.parameters()), lr=0.003)
    dense = torch.optim.Adam(mlp.parameters(), lr=0.003)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    uid = torch.randint(0, users, (steps, batch))
    iid = torch.randint(0, items, (steps, batch))
    y = torch.randint(0, 2, (steps, batch)).float()

    def step(k):
        u, v = U(uid[k]), V(iid[k])
        logit = (u * v).sum(1) + b(iid[k]).squeeze(1) + mlp(torch.cat([u, v, u * v], 1)).squeeze(1)
        loss = loss_fn(logit, y[k])
        sparse.zero_grad()
        dense.zero_grad()
        loss.backward()
        sparse.step()
        dense.step()

    for k in range(min(5, steps)):  # warm-up
        step(k)
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    secs = time.perf_counter() - t0
    print(json.dumps({"samples_per_second": steps * batch / secs, "threads": threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
