package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// seqBlock is one self-attention block's parameters: pre-norm attention
// (layer norm, q/k/v projections, causal attention, residual) then a
// pre-norm feed-forward layer (ReLU, residual). Graph nodes alias these
// slices, so optimiser updates in Go are seen by the next run.
type seqBlock struct {
	ln1g, ln1b []float32 // D
	wq, wk, wv []float32 // D×D
	bq, bv     []float32 // D (no key bias: softmax cancels it)
	ln2g, ln2b []float32
	w1, w2     []float32 // D×D
	b1, b2     []float32
}

// seqEncoder is the encoder's dense parameters (the embedding tables stay
// outside the graph: their rows are gathered into the input X).
type seqEncoder struct {
	D, L, heads int
	blocks      []seqBlock
	lnfg, lnfb  []float32 // the final layer norm
}

// params lists every dense parameter slice, in a fixed order (optimiser
// state and gradients follow it).
func (e *seqEncoder) params() [][]float32 {
	var ps [][]float32
	for i := range e.blocks {
		b := &e.blocks[i]
		ps = append(ps, b.ln1g, b.ln1b, b.wq, b.bq, b.wk, b.wv, b.bv, b.ln2g, b.ln2b, b.w1, b.b1, b.w2, b.b2)
	}
	return append(ps, e.lnfg, e.lnfb)
}

// seqGraph is the encoder's training graph for B sequences of L positions:
// inputs X (B·L×D: item + position + type + gap embeddings of each event,
// 0 rows for padding), valid (B·L), pos and neg (B·L×D: the next item's
// and a negative's embeddings) and w (B·L: 1 where a position has a next
// item); outputs the loss, the gradients of X, pos, neg and of every dense
// parameter. With K > 0 negatives the loss is a sampled softmax over the
// next item and K negatives shared by the batch: neg is K×D, and next (B·L)
// and negIdx (K) hold item indices; with K = 0 it is SASRec's BCE with one
// negative per position (neg B·L×D).
type seqGraph struct {
	g  *G.ExprGraph
	vm G.VM
	B  int
	e  *seqEncoder

	x, valid, pos, neg, w []float32
	next, negIdx          []float32 // sampled softmax: item indices
	K                     int
	L                     int       // positions per sequence: the encoder's, or a shorter bucket's
	rec                   *rows     // training: what each row's gradients scatter to
	h                     []float32 // the encoder's output per position
	gX, gPos, gNeg        []float32
	gParams               [][]float32
	loss                  float64
}

func newSeqGraph(e *seqEncoder, B, K int) (sg *seqGraph, err error) {
	return buildSeqGraph(e, B, e.L, K, true)
}

// buildSeqGraph is newSeqGraph; without train, the graph computes the
// encoder's outputs only (no loss, no gradients): States' forward pass.
//
// L ≤ e.L is the graph's window: a batch of sequences no longer than L runs
// on it with the same results as on the full window (its slots are the
// window's last L, padding is masked), at L/e.L of the cost.
func buildSeqGraph(e *seqEncoder, B, L, K int, train bool) (sg *seqGraph, err error) {
	defer recoverErr(&err, "build sequence graph")
	D := e.D
	if D%e.heads != 0 {
		return nil, fmt.Errorf("sequence encoder: dim %d is not a multiple of %d heads", D, e.heads)
	}
	R := B * L
	nNeg := R
	if K > 0 {
		nNeg = K
	}
	sg = &seqGraph{g: G.NewGraph(), B: B, e: e, K: K, L: L, rec: newRows(R),
		x: make([]float32, R*D), valid: make([]float32, R), pos: make([]float32, R*D), neg: make([]float32, nNeg*D), w: make([]float32, R),
		h: make([]float32, R*D), gX: make([]float32, R*D), gPos: make([]float32, R*D), gNeg: make([]float32, nNeg*D),
		next: make([]float32, R), negIdx: make([]float32, max(K, 1))}
	g := sg.g
	x := input(g, "x", sg.x, R, D)
	valid := input(g, "valid", sg.valid, R)
	pos := input(g, "pos", sg.pos, R, D)
	neg := input(g, "neg", sg.neg, nNeg, D)
	w := input(g, "w", sg.w, R)
	var wrt []*G.Node
	vec := func(name string, s []float32) *G.Node { n := input(g, name, s, len(s)); wrt = append(wrt, n); return n }
	mat := func(name string, s []float32) *G.Node { n := input(g, name, s, D, D); wrt = append(wrt, n); return n }
	ln := func(x, gain, bias *G.Node) *G.Node { return G.Must(applyKernel(layerNormKernel{}, x, gain, bias)) }
	proj := func(x, w, b *G.Node, relu bool) *G.Node {
		return G.Must(dense([]*G.Node{x}, []*G.Node{w}, b, relu))
	}
	noBias := input(g, "zero", make([]float32, D), D)
	cur := x
	for i := range e.blocks {
		b := &e.blocks[i]
		p := fmt.Sprintf("block%d.", i)
		g1, b1 := vec(p+"ln1g", b.ln1g), vec(p+"ln1b", b.ln1b)
		wq, bq := mat(p+"wq", b.wq), vec(p+"bq", b.bq)
		wk := mat(p+"wk", b.wk)
		wv, bv := mat(p+"wv", b.wv), vec(p+"bv", b.bv)
		g2, b2 := vec(p+"ln2g", b.ln2g), vec(p+"ln2b", b.ln2b)
		w1, c1 := mat(p+"w1", b.w1), vec(p+"b1", b.b1)
		w2, c2 := mat(p+"w2", b.w2), vec(p+"b2", b.b2)
		a := ln(cur, g1, b1)
		att := G.Must(applyKernel(attentionKernel{L: L, heads: e.heads, cache: &attentionCache{}}, proj(a, wq, bq, false), proj(a, wk, noBias, false), proj(a, wv, bv, false), valid))
		cur = G.Must(G.Add(cur, att))
		f := proj(proj(ln(cur, g2, b2), w1, c1, true), w2, c2, false)
		cur = G.Must(G.Add(cur, f))
	}
	h := ln(cur, vec("lnfg", e.lnfg), vec("lnfb", e.lnfb))
	readInto(h, sg.h)
	if !train {
		sg.vm = G.NewTapeMachine(g)
		return sg, nil
	}
	var cost *G.Node
	if K > 0 {
		cost = G.Must(applyKernel(sampledSoftmaxKernel{sum: &sg.loss, buf: &softmaxBuffer{}}, h, pos, neg, w, input(g, "next", sg.next, R), input(g, "negIdx", sg.negIdx, K)))
	} else {
		cost = G.Must(applyKernel(nextItemLossKernel{sum: &sg.loss}, h, pos, neg, w))
	}
	all := append([]*G.Node{x, pos, neg}, wrt...)
	grads, err := G.Grad(cost, all...)
	if err != nil {
		return nil, fmt.Errorf("build sequence graph: gradients: %w", err)
	}
	outs := [][]float32{sg.gX, sg.gPos, sg.gNeg}
	for _, p := range e.params() {
		gp := make([]float32, len(p))
		sg.gParams = append(sg.gParams, gp)
		outs = append(outs, gp)
	}
	for i, gn := range grads {
		readInto(gn, outs[i])
	}
	sg.vm = G.NewTapeMachine(g)
	return sg, nil
}

// run executes one forward/backward pass on the current inputs.
func (sg *seqGraph) run() error { return runVM(sg.vm, "sequence step") }

// Close releases the VM.
func (sg *seqGraph) Close() error { return sg.vm.Close() }
