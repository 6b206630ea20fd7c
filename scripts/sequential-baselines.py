#!/usr/bin/env python3
"""Offline sequential recommenders (SASRec, GRU4Rec) for `loadgen holdout`.

Reads the time-ordered events `loadgen holdout --events-out FILE` writes (one
`user item` pair of dense indices per line, ties already in file order), fits a model on
the first `--train` share (and again at each `--retrain` share), and writes, for every
held-out event in order, the model's top k items (seen items excluded) to `--out`, one
line of space-separated item indices per event. `loadgen holdout --ranks NAME=FILE` then
scores those lists with the same code as every other model, so the protocol lives in one
place (loadgen/src/holdout/mod.rs).

Models (the textbook configurations of the reference figures): hidden 64, max_len 50,
dropout 0.2, Adam 1e-3, full softmax cross-entropy at every position; SASRec with two
causal self-attention blocks, GRU4Rec with one GRU layer. The number of epochs is chosen
on a validation slice (the last 10 % of the fitting events): a model is fitted on the rest
and scored on that slice after each epoch, then refitted on everything for the best count.

Needs PyTorch (`pip install torch numpy`); CPU is enough for logs of ~100k events.
"""

import argparse
import math
import os
import sys
import time

# MKL picks a slow generic path on AMD processors unless told to use AVX2 (a cap, so a
# processor without it still gets the best it has): 2.5x on this project's machines.
os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_LEN = 50
HIDDEN = 64


class SASRec(nn.Module):
    def __init__(self, n_items, dropout):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, HIDDEN, padding_idx=0)
        self.pos = nn.Embedding(MAX_LEN, HIDDEN)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            HIDDEN, 1, HIDDEN, dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(HIDDEN)

    def forward(self, seq):
        n = seq.shape[1]
        x = self.items(seq) * math.sqrt(HIDDEN) + self.pos(torch.arange(n))
        x = self.drop(x) * (seq > 0).unsqueeze(-1)
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        return self.norm(self.blocks(x, mask=causal))

    def logits(self, h):
        return h @ self.items.weight[1:].T


class GRU4Rec(nn.Module):
    def __init__(self, n_items, dropout):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, HIDDEN, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, n_items)

    def forward(self, seq):
        h, _ = self.gru(self.drop(self.items(seq)))
        return self.drop(h)

    def logits(self, h):
        return self.out(h)


MODELS = {"sasrec": SASRec, "gru4rec": GRU4Rec}


def windows(events, upto):
    """Training windows (inputs, targets) of at most MAX_LEN+1 views, left-padded with 0,
    from each viewer's views among events[:upto]; items are shifted by one (0 = padding)."""
    seqs = {}
    for u, i in events[:upto]:
        seqs.setdefault(u, []).append(i + 1)
    xs, ys = [], []
    for s in seqs.values():
        for end in range(len(s), 1, -MAX_LEN):
            w = s[max(0, end - MAX_LEN - 1) : end]
            pad = MAX_LEN + 1 - len(w)
            w = [0] * pad + w
            xs.append(w[:-1])
            ys.append(w[1:])
    return torch.tensor(xs), torch.tensor(ys)


def queries(events, lo, hi):
    """For each event in [lo, hi): the viewer's last MAX_LEN views before it (shifted, left
    padded) and the set of items the viewer has seen."""
    hist = {}
    seqs, seen = [], []
    for t, (u, i) in enumerate(events[:hi]):
        h = hist.setdefault(u, [])
        if t >= lo:
            w = h[-MAX_LEN:]
            seqs.append([0] * (MAX_LEN - len(w)) + w)
            seen.append(set(x - 1 for x in h))
        h.append(i + 1)
    return torch.tensor(seqs, dtype=torch.long).reshape(-1, MAX_LEN), seen


def rank(model, seqs, seen, k, batch=512):
    model.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(seqs), batch):
            logits = model.logits(model(seqs[b : b + batch])[:, -1, :])
            for row, s in zip(logits, seen[b : b + batch]):
                if s:
                    row[list(s)] = -math.inf
                out.append(torch.topk(row, k).indices.tolist())
    return out


def hit_rate(lists, events, lo):
    return sum(events[lo + j][1] in l for j, l in enumerate(lists)) / max(1, len(lists))


def fit(name, events, upto, n_items, epochs, args, val=None):
    """Fits a fresh model on events[:upto] for `epochs` epochs; with `val` (seqs, seen,
    first index), scores it after each epoch and returns the per-epoch HR@k too."""
    torch.manual_seed(args.seed)
    model = MODELS[name](n_items, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    xs, ys = windows(events, upto)
    gen = torch.Generator().manual_seed(args.seed)
    scores = []
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xs), generator=gen)
        for b in range(0, len(xs), args.batch):
            idx = perm[b : b + args.batch]
            y = ys[idx]
            # Scored only where there is a next view: no softmax over padding.
            h = model(xs[idx])[y > 0]
            loss = F.cross_entropy(model.logits(h), y[y > 0] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val is not None:
            seqs, seen, lo = val
            hr = hit_rate(rank(model, seqs, seen, args.k), events, lo)
            scores.append(hr)
            print(f"  {name} epoch {ep + 1}: validation HR@{args.k} {hr:.4f}", file=sys.stderr)
            if len(scores) - 1 - int(np.argmax(scores)) >= args.patience:
                break
    return model, scores


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("events", help="file written by loadgen holdout --events-out")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--out", required=True, help="top-k lists, one line per held-out event")
    p.add_argument("--train", type=float, default=0.8)
    p.add_argument("--retrain", default="", help="shares to refit at, e.g. 0.9 (default: frozen)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    events = [tuple(map(int, line.split())) for line in open(args.events)]
    n = len(events)
    n_items = 1 + max(i for _, i in events)
    first = int(n * args.train)
    cuts = [first] + sorted(int(n * float(r)) for r in args.retrain.split(",") if r.strip())
    cuts.append(n)
    lists = []
    for lo, hi in zip(cuts, cuts[1:]):
        # Epochs from a validation slice at the end of what the model may see.
        vlo = int(lo * 0.9)
        seqs, seen = queries(events, vlo, lo)
        start = time.time()
        _, scores = fit(args.model, events, vlo, n_items, args.max_epochs, args, (seqs, seen, vlo))
        best = 1 + int(np.argmax(scores))
        print(
            f"{args.model}: fitting on {lo} events, {best} epochs "
            f"(validation HR@{args.k} {max(scores):.4f}, {time.time() - start:.0f} s)",
            file=sys.stderr,
        )
        model, _ = fit(args.model, events, lo, n_items, best, args)
        seqs, seen = queries(events, lo, hi)
        lists.extend(rank(model, seqs, seen, args.k))
    with open(args.out, "w") as f:
        for l in lists:
            f.write(" ".join(map(str, l)) + "\n")
    print(f"{args.model}: HR@{args.k} {hit_rate(lists, events, first):.4f} on {len(lists)} events", file=sys.stderr)


if __name__ == "__main__":
    main()
