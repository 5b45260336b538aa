package nn

import (
	"fmt"
	"hash"
	"math"
	"sync/atomic"

	"github.com/chewxy/hm"
	"github.com/shelfml/shelf/internal/f32"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The sequence encoder's ops (a causal self-attention block over each
// user's recent events): layer norm, causal multi-head attention with a
// padding mask, and the per-position next-item loss. Each is a kernel — Go
// code for the forward pass and for every input's gradient — wrapped as a
// Gorgonia op (kernelOp) whose SymDiff hands Gorgonia one gradient node per
// differentiable input (kernelGradOp). The gradient nodes of one op share
// one backward computation per run: the first computes every input's
// gradient, the others copy theirs. graph-level finite differences check
// every one (seqops_test.go).

// kernel is the Go side of one op.
type kernel interface {
	name() string
	types() (in []hm.Type, out hm.Type)
	outShape(in []tensor.Shape) (tensor.Shape, error)
	// forward writes the result (len = outShape's size; 1 for a scalar).
	forward(in [][]float32, sh []tensor.Shape, out []float32) error
	// backward sets din[i] for every input i with diff()[i] (each zeroed,
	// of input i's size), given the result and its incoming gradient.
	backward(in [][]float32, sh []tensor.Shape, out, dout []float32, din [][]float32) error
	diff() []bool
}

var kernelIDs atomic.Uint64

// kernelOp applies a kernel. It keeps its result buffer and its inputs'
// gradients across runs (shapes are fixed per graph).
type kernelOp struct {
	opBase
	k      kernel
	id     uint64
	out    buf
	result []float32 // the last forward result (for a scalar: one value)
	gen    uint64    // forward runs
	bgen   uint64    // the run whose gradients din holds
	din    [][]float32
	in     [][]float32 // the last forward's inputs and shapes, for backward
	sh     []tensor.Shape
}

// applyKernel builds k's node on the inputs.
func applyKernel(k kernel, in ...*G.Node) (*G.Node, error) {
	return G.ApplyOp(&kernelOp{k: k, id: kernelIDs.Add(1)}, in...)
}

func (op *kernelOp) Arity() int { in, _ := op.k.types(); return len(in) }
func (op *kernelOp) Type() hm.Type {
	in, out := op.k.types()
	return hm.NewFnType(append(append([]hm.Type{}, in...), out)...)
}
func (op *kernelOp) String() string        { return fmt.Sprintf("%s#%d", op.k.name(), op.id) }
func (op *kernelOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *kernelOp) Hashcode() uint32      { return hashOf(op) }
func (op *kernelOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	sh, err := shapesOf(in)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return op.k.outShape(sh)
}
func (op *kernelOp) DiffWRT(int) []bool { return op.k.diff() }

func shapesOf(in []G.DimSizer) ([]tensor.Shape, error) {
	sh := make([]tensor.Shape, len(in))
	for i, d := range in {
		s, ok := d.(tensor.Shape)
		if !ok {
			return nil, fmt.Errorf("input %d: want a shape, got %T", i, d)
		}
		sh[i] = s
	}
	return sh, nil
}

// valueData returns v's float32 data and shape (a scalar as one value).
func valueData(v G.Value) ([]float32, tensor.Shape, error) {
	switch x := v.(type) {
	case *G.F32:
		return []float32{float32(*x)}, tensor.ScalarShape(), nil
	case *tensor.Dense:
		if d, ok := x.Data().([]float32); ok {
			return d, x.Shape(), nil
		}
		if d, ok := x.Data().(float32); ok {
			return []float32{d}, tensor.ScalarShape(), nil
		}
	}
	return nil, nil, fmt.Errorf("want float32 values, got %T", v)
}

func (op *kernelOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(vals), op.Arity())
	}
	op.in, op.sh = op.in[:0], op.sh[:0]
	for i, v := range vals {
		d, s, err := valueData(v)
		if err != nil {
			return nil, fmt.Errorf("%v: input %d: %w", op, i, err)
		}
		op.in, op.sh = append(op.in, d), append(op.sh, s)
	}
	shape, err := op.k.outShape(op.sh)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	op.gen++
	if shape.IsScalar() {
		if len(op.result) != 1 {
			op.result = make([]float32, 1)
		}
		if err := op.k.forward(op.in, op.sh, op.result); err != nil {
			return nil, fmt.Errorf("%v: %w", op, err)
		}
		return G.NewF32(op.result[0]), nil
	}
	t, o := op.out.get(shape...)
	if err := op.k.forward(op.in, op.sh, o); err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	op.result = o
	return t, nil
}

func (op *kernelOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	diff := op.k.diff()
	out := make(G.Nodes, len(in))
	args := append(append(G.Nodes{}, in...), output, grad)
	for i, d := range diff {
		if !d {
			continue
		}
		n, err := G.ApplyOp(&kernelGradOp{parent: op, wrt: i}, args...)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// backward computes every input's gradient once per forward run.
func (op *kernelOp) backward(dout []float32) error {
	if op.bgen == op.gen {
		return nil
	}
	if op.din == nil {
		op.din = make([][]float32, len(op.in))
	}
	for i, d := range op.k.diff() {
		if d {
			if len(op.din[i]) != len(op.in[i]) {
				op.din[i] = make([]float32, len(op.in[i]))
			}
			clear(op.din[i])
		}
	}
	if err := op.k.backward(op.in, op.sh, op.result, dout, op.din); err != nil {
		return fmt.Errorf("%v backward: %w", op, err)
	}
	op.bgen = op.gen
	return nil
}

// kernelGradOp is the gradient of its parent's result with respect to input
// wrt: inputs are the parent's inputs, its result and the incoming gradient.
type kernelGradOp struct {
	opBase
	parent *kernelOp
	wrt    int
	out    buf
}

func (op *kernelGradOp) Arity() int { return op.parent.Arity() + 2 }
func (op *kernelGradOp) Type() hm.Type {
	in, out := op.parent.k.types()
	ts := append(append([]hm.Type{}, in...), out, out, in[op.wrt])
	return hm.NewFnType(ts...)
}
func (op *kernelGradOp) String() string        { return fmt.Sprintf("%v.grad%d", op.parent, op.wrt) }
func (op *kernelGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *kernelGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *kernelGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[op.wrt].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("%v: want a shape, got %T", op, in[op.wrt])
	}
	return s.Clone(), nil
}

func (op *kernelGradOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(vals), op.Arity())
	}
	dout, _, err := valueData(vals[len(vals)-1])
	if err != nil {
		return nil, fmt.Errorf("%v: gradient: %w", op, err)
	}
	if err := op.parent.backward(dout); err != nil {
		return nil, err
	}
	_, s, err := valueData(vals[op.wrt])
	if err != nil {
		return nil, err
	}
	t, o := op.out.get(s...)
	copy(o, op.parent.din[op.wrt])
	return t, nil
}

// layerNormKernel: y = g ⊙ (x − μ)/√(σ² + ε) + b per row of x (R×D), with
// gain g and bias b (D).
type layerNormKernel struct{}

const layerNormEps = 1e-5

func (layerNormKernel) name() string { return "LayerNorm" }
func (layerNormKernel) types() ([]hm.Type, hm.Type) {
	return []hm.Type{tyMat, tyVec, tyVec}, tyMat
}
func (layerNormKernel) diff() []bool { return []bool{true, true, true} }
func (layerNormKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in[0]) != 2 || len(in[1]) != 1 || len(in[2]) != 1 || in[1][0] != in[0][1] || in[2][0] != in[0][1] {
		return nil, fmt.Errorf("x %v, gain %v, bias %v", in[0], in[1], in[2])
	}
	return in[0].Clone(), nil
}

// stats returns row r's mean and 1/σ.
func rowStats(x []float32) (mu, inv float64) {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mu = s / float64(len(x))
	var q float64
	for _, v := range x {
		d := float64(v) - mu
		q += d * d
	}
	return mu, 1 / math.Sqrt(q/float64(len(x))+layerNormEps)
}

func (layerNormKernel) forward(in [][]float32, sh []tensor.Shape, out []float32) error {
	x, g, b := in[0], in[1], in[2]
	D := sh[0][1]
	for r := range sh[0][0] {
		row := x[r*D : (r+1)*D]
		mu, inv := rowStats(row)
		for j, v := range row {
			out[r*D+j] = float32(float64(g[j])*(float64(v)-mu)*inv) + b[j]
		}
	}
	return nil
}

// backward: with x̂ = (x − μ)/σ and dx̂ = dy ⊙ g,
// dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂))/σ, dg = Σ_rows dy ⊙ x̂, db = Σ_rows dy.
func (layerNormKernel) backward(in [][]float32, sh []tensor.Shape, _, dout []float32, din [][]float32) error {
	x, g := in[0], in[1]
	D := sh[0][1]
	xh := make([]float64, D)
	dxh := make([]float64, D)
	for r := range sh[0][0] {
		row, dy := x[r*D:(r+1)*D], dout[r*D:(r+1)*D]
		mu, inv := rowStats(row)
		var m1, m2 float64
		for j := range D {
			xh[j] = (float64(row[j]) - mu) * inv
			dxh[j] = float64(dy[j]) * float64(g[j])
			m1 += dxh[j]
			m2 += dxh[j] * xh[j]
			din[1][j] += float32(float64(dy[j]) * xh[j])
			din[2][j] += dy[j]
		}
		m1, m2 = m1/float64(D), m2/float64(D)
		for j := range D {
			din[0][r*D+j] = float32((dxh[j] - m1 - xh[j]*m2) * inv)
		}
	}
	return nil
}

// attentionKernel is causal multi-head self-attention over B sequences of
// L positions: inputs q, k, v (B·L × D, rows in sequence order) and valid
// (B·L; 1 for an event, 0 for padding). Position t of a sequence attends to
// the valid positions j ≤ t with softmax(q_t·k_j/√d_h) per head (d_h =
// D/heads); a position with no valid key gets 0. The forward pass keeps
// every row's weights (B·L·heads·L float32) for the backward pass of the
// same run; the dot products and sums over d_h run on internal/f32's
// vector kernels.
type attentionKernel struct {
	L, heads int
	cache    *attentionCache
}

// attentionCache holds the last forward pass's weights, per (row, head)
// a run of L (0 beyond the row's position and for invalid keys), and
// whether the row had any valid key.
type attentionCache struct {
	p   []float32
	any []bool
}

func (k attentionKernel) name() string {
	return fmt.Sprintf("CausalAttention(L=%d,h=%d)", k.L, k.heads)
}
func (attentionKernel) types() ([]hm.Type, hm.Type) {
	return []hm.Type{tyMat, tyMat, tyMat, tyVec}, tyMat
}
func (attentionKernel) diff() []bool { return []bool{true, true, true, false} }
func (k attentionKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	q := in[0]
	if len(q) != 2 || !q.Eq(in[1]) || !q.Eq(in[2]) || len(in[3]) != 1 || in[3][0] != q[0] || q[0]%k.L != 0 || q[1]%k.heads != 0 {
		return nil, fmt.Errorf("q %v, k %v, v %v, valid %v for L=%d, %d heads", q, in[1], in[2], in[3], k.L, k.heads)
	}
	return q.Clone(), nil
}

// probs fills p[0..t] with position t's attention weights for one head
// (0 for invalid keys) and reports whether any key was valid.
func (k attentionKernel) probs(q, kk, valid []float32, D, base, t, off, dh int, p []float32) bool {
	scale := float32(1 / math.Sqrt(float64(dh)))
	qt := q[(base+t)*D+off : (base+t)*D+off+dh]
	best := float32(math.Inf(-1))
	for j := 0; j <= t; j++ {
		if valid[base+j] == 0 {
			continue
		}
		p[j] = f32.Dot(qt, kk[(base+j)*D+off:(base+j)*D+off+dh]) * scale
		best = max(best, p[j])
	}
	if math.IsInf(float64(best), -1) {
		clear(p[:t+1])
		return false
	}
	var z float64
	for j := 0; j <= t; j++ {
		if valid[base+j] == 0 {
			p[j] = 0
			continue
		}
		p[j] = expf(p[j] - best)
		z += float64(p[j])
	}
	inv := float32(1 / z)
	for j := 0; j <= t; j++ {
		p[j] *= inv
	}
	return true
}

func (k attentionKernel) forward(in [][]float32, sh []tensor.Shape, out []float32) error {
	q, kk, v, valid := in[0], in[1], in[2], in[3]
	R, D := sh[0][0], sh[0][1]
	dh := D / k.heads
	L := k.L
	var c *attentionCache
	if k.cache != nil {
		c = k.cache
		if len(c.p) != R*k.heads*L {
			c.p, c.any = make([]float32, R*k.heads*L), make([]bool, R*k.heads)
		}
	}
	p := make([]float32, L)
	clear(out)
	for base := 0; base < R; base += L {
		for h := range k.heads {
			off := h * dh
			for t := range L {
				pt := p
				if c != nil {
					pt = c.p[((base+t)*k.heads+h)*L : ((base+t)*k.heads+h+1)*L]
				}
				clear(pt[t+1:])
				ok := k.probs(q, kk, valid, D, base, t, off, dh, pt)
				if c != nil {
					c.any[(base+t)*k.heads+h] = ok
				}
				if !ok {
					continue
				}
				o := out[(base+t)*D+off : (base+t)*D+off+dh]
				for j := 0; j <= t; j++ {
					if pt[j] != 0 {
						f32.Axpy(pt[j], v[(base+j)*D+off:(base+j)*D+off+dh], o)
					}
				}
			}
		}
	}
	return nil
}

// backward: dv_j += p_j·do_t; dp_j = do_t·v_j; ds_j = p_j(dp_j − Σ_i p_i dp_i);
// dq_t += Σ_j ds_j k_j/√d_h; dk_j += ds_j q_t/√d_h. The weights come from
// the forward pass of the same run (cached; recomputed for a kernel built
// without a cache).
func (k attentionKernel) backward(in [][]float32, sh []tensor.Shape, _, dout []float32, din [][]float32) error {
	q, kk, v, valid := in[0], in[1], in[2], in[3]
	dq, dk, dv := din[0], din[1], din[2]
	R, D := sh[0][0], sh[0][1]
	dh := D / k.heads
	L := k.L
	scale := float32(1 / math.Sqrt(float64(dh)))
	c := k.cache
	cached := c != nil && len(c.p) == R*k.heads*L
	p := make([]float32, L)
	dp := make([]float32, L)
	for base := 0; base < R; base += L {
		for h := range k.heads {
			off := h * dh
			for t := range L {
				pt := p
				if cached {
					if !c.any[(base+t)*k.heads+h] {
						continue
					}
					pt = c.p[((base+t)*k.heads+h)*L : ((base+t)*k.heads+h+1)*L]
				} else if !k.probs(q, kk, valid, D, base, t, off, dh, pt) {
					continue
				}
				do := dout[(base+t)*D+off : (base+t)*D+off+dh]
				var dot float32
				for j := 0; j <= t; j++ {
					dp[j] = 0
					if pt[j] == 0 {
						continue
					}
					dp[j] = f32.Dot(do, v[(base+j)*D+off:(base+j)*D+off+dh])
					f32.Axpy(pt[j], do, dv[(base+j)*D+off:(base+j)*D+off+dh])
					dot += pt[j] * dp[j]
				}
				qt := q[(base+t)*D+off : (base+t)*D+off+dh]
				dqt := dq[(base+t)*D+off : (base+t)*D+off+dh]
				for j := 0; j <= t; j++ {
					if pt[j] == 0 {
						continue
					}
					ds := pt[j] * (dp[j] - dot) * scale
					f32.Axpy(ds, kk[(base+j)*D+off:(base+j)*D+off+dh], dqt)
					f32.Axpy(ds, qt, dk[(base+j)*D+off:(base+j)*D+off+dh])
				}
			}
		}
	}
	return nil
}

// nextItemLossKernel is SASRec's per-position loss: inputs h (R×D, the
// encoder's output), pos and neg (R×D, the embeddings of each position's
// next item and of a sampled negative) and w (R; 0 where a position has no
// next item). loss = Σ_r w_r·(softplus(−h_r·pos_r) + softplus(h_r·neg_r)).
type nextItemLossKernel struct {
	sum *float64 // the last run's loss, before rounding to float32
}

func (nextItemLossKernel) name() string { return "NextItemLoss" }
func (nextItemLossKernel) types() ([]hm.Type, hm.Type) {
	return []hm.Type{tyMat, tyMat, tyMat, tyVec}, tyA
}
func (nextItemLossKernel) diff() []bool { return []bool{true, true, true, false} }
func (nextItemLossKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in[0]) != 2 || !in[0].Eq(in[1]) || !in[0].Eq(in[2]) || len(in[3]) != 1 || in[3][0] != in[0][0] {
		return nil, fmt.Errorf("h %v, pos %v, neg %v, w %v", in[0], in[1], in[2], in[3])
	}
	return tensor.ScalarShape(), nil
}

func rowDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func (k nextItemLossKernel) forward(in [][]float32, sh []tensor.Shape, out []float32) error {
	h, pos, neg, w := in[0], in[1], in[2], in[3]
	D := sh[0][1]
	var c float64
	for r := range sh[0][0] {
		if w[r] == 0 {
			continue
		}
		hr := h[r*D : (r+1)*D]
		c += float64(w[r]) * (softplus(-rowDot(hr, pos[r*D:(r+1)*D])) + softplus(rowDot(hr, neg[r*D:(r+1)*D])))
	}
	if k.sum != nil {
		*k.sum = c
	}
	out[0] = float32(c)
	return nil
}

// backward: with zp = h·pos, zn = h·neg: dh = g·w·((σ(zp) − 1)·pos + σ(zn)·neg),
// dpos = g·w·(σ(zp) − 1)·h, dneg = g·w·σ(zn)·h.
func (nextItemLossKernel) backward(in [][]float32, sh []tensor.Shape, _, dout []float32, din [][]float32) error {
	h, pos, neg, w := in[0], in[1], in[2], in[3]
	D := sh[0][1]
	g := float64(dout[0])
	for r := range sh[0][0] {
		if w[r] == 0 {
			continue
		}
		lo, hi := r*D, (r+1)*D
		hr, pr, nr := h[lo:hi], pos[lo:hi], neg[lo:hi]
		a := g * float64(w[r]) * (sigmoid(rowDot(hr, pr)) - 1)
		b := g * float64(w[r]) * sigmoid(rowDot(hr, nr))
		for j := range D {
			din[0][lo+j] = float32(a*float64(pr[j]) + b*float64(nr[j]))
			din[1][lo+j] = float32(a * float64(hr[j]))
			din[2][lo+j] = float32(b * float64(hr[j]))
		}
	}
	return nil
}

// sampledSoftmaxKernel is the next-item loss as a softmax over the true next
// item and K negatives shared by the batch (sampled uniformly, so the
// log-Q correction is a constant and drops out): inputs h (R×D, the
// encoder's outputs), pos (R×D, each position's next-item embedding), neg
// (K×D), w (R, each position's weight, 0 = no target), next (R) and negIdx
// (K) (item indices, to leave a negative that is the row's own next item
// out of its softmax); output Σ_r w_r·(logsumexp(z_r) − z_r0), where z_r0 =
// h_r·pos_r and z_rk = h_r·neg_k. The logits of all rows × negatives are one
// matrix product (internal/f32.Gemm), recomputed in backward.
type sampledSoftmaxKernel struct {
	sum *float64       // the last run's loss, before rounding to float32
	buf *softmaxBuffer // the forward pass's probabilities, for the backward pass of the same run (nil: recomputed)
}

// softmaxBuffer holds p0 (R) and P (R×K) of the last forward pass.
type softmaxBuffer struct {
	p     []float32
	fresh bool // set by forward, used once by backward
}

// scratch returns the kernel's p0 (R) and P (R×K) buffers.
func (k sampledSoftmaxKernel) scratch(R, K int) (p0, P []float32) {
	if k.buf == nil {
		return make([]float32, R), make([]float32, R*K)
	}
	if len(k.buf.p) != R*(K+1) {
		k.buf.p = make([]float32, R*(K+1))
	}
	return k.buf.p[:R], k.buf.p[R:]
}

func (sampledSoftmaxKernel) name() string { return "SampledSoftmax" }
func (sampledSoftmaxKernel) types() ([]hm.Type, hm.Type) {
	return []hm.Type{tyMat, tyMat, tyMat, tyVec, tyVec, tyVec}, tyA
}
func (sampledSoftmaxKernel) diff() []bool { return []bool{true, true, true, false, false, false} }
func (sampledSoftmaxKernel) outShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in[0]) != 2 || !in[0].Eq(in[1]) || len(in[2]) != 2 || in[2][1] != in[0][1] ||
		len(in[3]) != 1 || in[3][0] != in[0][0] || len(in[4]) != 1 || in[4][0] != in[0][0] || len(in[5]) != 1 || in[5][0] != in[2][0] {
		return nil, fmt.Errorf("h %v, pos %v, neg %v, w %v, next %v, negIdx %v", in[0], in[1], in[2], in[3], in[4], in[5])
	}
	return tensor.ScalarShape(), nil
}

// probs computes each weighted row's softmax over [positive, negatives]:
// p0[r] and P (R×K, 0 for a masked negative), and the loss.
func (sampledSoftmaxKernel) probs(in [][]float32, sh []tensor.Shape, p0, P []float32) float64 {
	h, pos, neg, w, next, negIdx := in[0], in[1], in[2], in[3], in[4], in[5]
	R, D, K := sh[0][0], sh[0][1], sh[2][0]
	f32.Gemm(false, true, R, K, D, 1, h, D, neg, D, 0, P, K)
	var loss float64
	for r := range R {
		row := P[r*K : (r+1)*K]
		if w[r] == 0 {
			clear(row)
			p0[r] = 0
			continue
		}
		zp := float32(rowDot(h[r*D:(r+1)*D], pos[r*D:(r+1)*D]))
		m := zp
		for k, z := range row {
			if negIdx[k] != next[r] {
				m = max(m, z)
			}
		}
		// one exponential per logit: row holds exp(z − m) until divided by the sum
		e0 := expf(zp - m)
		sum := float64(e0)
		for k, z := range row {
			if negIdx[k] == next[r] {
				row[k] = 0
				continue
			}
			row[k] = expf(z - m)
			sum += float64(row[k])
		}
		loss += float64(w[r]) * (float64(m) + math.Log(sum) - float64(zp))
		inv := float32(1 / sum)
		p0[r] = e0 * inv
		for k := range row {
			row[k] *= inv
		}
	}
	return loss
}

func (k sampledSoftmaxKernel) forward(in [][]float32, sh []tensor.Shape, out []float32) error {
	p0, P := k.scratch(sh[0][0], sh[2][0])
	c := k.probs(in, sh, p0, P)
	if k.buf != nil {
		k.buf.fresh = true
	}
	if k.sum != nil {
		*k.sum = c
	}
	out[0] = float32(c)
	return nil
}

// backward: with a_r = g·w_r: dh_r = a_r·((p_r0 − 1)·pos_r + Σ_k P_rk·neg_k),
// dpos_r = a_r·(p_r0 − 1)·h_r, dneg = (a ⊙ P)ᵀ·h.
func (k sampledSoftmaxKernel) backward(in [][]float32, sh []tensor.Shape, _, dout []float32, din [][]float32) error {
	h, pos, neg, w := in[0], in[1], in[2], in[3]
	R, D, K := sh[0][0], sh[0][1], sh[2][0]
	p0, P := k.scratch(R, K)
	if k.buf == nil || !k.buf.fresh {
		k.probs(in, sh, p0, P)
	}
	if k.buf != nil {
		k.buf.fresh = false
	}
	g := dout[0]
	for r := range R {
		a := g * w[r]
		row := P[r*K : (r+1)*K]
		for j := range row {
			row[j] *= a
		}
		b := a * (p0[r] - 1)
		if w[r] == 0 {
			b = 0
		}
		for j := range D {
			din[0][r*D+j] = b * pos[r*D+j]
			din[1][r*D+j] = b * h[r*D+j]
		}
	}
	f32.Gemm(false, false, R, D, K, 1, P, K, neg, D, 1, din[0], D)
	f32.Gemm(true, false, K, D, R, 1, P, K, h, D, 0, din[2], D)
	return nil
}

// expf is e^x in float32 (Cephes' expf: range reduction by ln 2 and a
// degree-6 polynomial; relative error below 2·10⁻⁷), 0 below −87 and +Inf
// above 88.7: the softmaxes' exponentials, about 3× faster than math.Exp.
func expf(x float32) float32 {
	switch {
	case x < -87:
		return 0
	case x > 88.7:
		return float32(math.Inf(1))
	case x != x:
		return x
	}
	n := float32(math.Floor(float64(x*1.44269504088896341) + 0.5))
	x -= n * 0.693359375
	x -= n * -2.12194440e-4
	y := ((((((1.9875691500e-4*x+1.3981999507e-3)*x+8.3334519073e-3)*x+4.1665795894e-2)*x+1.6666665459e-1)*x+5.0000001201e-1)*x*x + x + 1)
	return math.Float32frombits(math.Float32bits(y) + uint32(int32(n))<<23)
}
