"""Shelf's sequence encoder in PyTorch, for the side-by-side in `make bench`.

Same architecture and step as model/nn.SeqTrainer: input = item + position + type embeddings
(the item table shared with the output side), `blocks` pre-norm blocks of causal multi-head
self-attention (Q and V with biases, K without) and a ReLU feed-forward D -> D -> D, a final
layer norm; the loss is BCE on <h, E[next]> against one uniform negative per position (SASRec),
Adam (sparse on the embedding tables); dropout on the inputs. Random full-length sequences
(throughput only). Prints one JSON line: {"positions_per_second": ..., "threads": ..., "torch": ...}.
"""
import json
import math
import sys
import time

import torch


class Block(torch.nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.q, self.k, self.v = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim, bias=False), torch.nn.Linear(dim, dim)
        self.w1, self.w2 = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, l, d = x.shape
        h, dh = self.heads, d // self.heads
        a = self.ln1(x)
        q = self.q(a).view(b, l, h, dh).transpose(1, 2)
        k = self.k(a).view(b, l, h, dh).transpose(1, 2)
        v = self.v(a).view(b, l, h, dh).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        s = s.masked_fill(mask, float("-inf"))
        att = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, l, d)
        x = x + att
        return x + self.w2(torch.relu(self.w1(self.ln2(x))))


def main():
    items, dim, maxlen, blocks, heads, batch, steps, threads = (int(a) for a in sys.argv[1:9])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    E = torch.nn.Embedding(items, dim, sparse=True)
    P = torch.nn.Embedding(maxlen, dim, sparse=True)
    T = torch.nn.Embedding(4, dim, sparse=True)
    enc = torch.nn.ModuleList([Block(dim, heads) for _ in range(blocks)])
    lnf = torch.nn.LayerNorm(dim)
    sparse = torch.optim.SparseAdam(list(E.parameters()) + list(P.parameters()) + list(T.parameters()), lr=0.005)
    dense = torch.optim.Adam(list(enc.parameters()) + list(lnf.parameters()), lr=0.005)
    drop = torch.nn.Dropout(0.2)
    seq = torch.randint(0, items, (steps, batch, maxlen + 1))
    typ = torch.randint(0, 4, (steps, batch, maxlen))
    neg = torch.randint(0, items, (steps, batch, maxlen))
    causal = torch.triu(torch.ones(maxlen, maxlen, dtype=torch.bool), 1)
    slots = torch.arange(maxlen)

    def step(k):
        x = drop(E(seq[k, :, :-1]) + P(slots) + T(typ[k]))
        for blk in enc:
            x = blk(x, causal)
        h = lnf(x)
        zp = (h * E(seq[k, :, 1:])).sum(-1)
        zn = (h * E(neg[k])).sum(-1)
        loss = torch.nn.functional.softplus(-zp).mean() + torch.nn.functional.softplus(zn).mean()
        sparse.zero_grad()
        dense.zero_grad()
        loss.backward()
        sparse.step()
        dense.step()

    for k in range(min(3, steps)):  # warm-up
        step(k)
    t0 = time.perf_counter()
    for k in range(steps):
        step(k)
    secs = time.perf_counter() - t0
    print(json.dumps({"positions_per_second": steps * batch * maxlen / secs, "threads": threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
