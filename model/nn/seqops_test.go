package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// tinySeqEncoder is a two-block, two-head encoder with random parameters.
func tinySeqEncoder(rng *rand.Rand, D, L, heads, blocks int) *seqEncoder {
	r := func(n int, scale float64) []float32 { return normals(rng, n, scale, 0) }
	one := func(n int) []float32 { return normals(rng, n, 0.1, 1) }
	e := &seqEncoder{D: D, L: L, heads: heads, lnfg: one(D), lnfb: r(D, 0.1)}
	for range blocks {
		e.blocks = append(e.blocks, seqBlock{
			ln1g: one(D), ln1b: r(D, 0.1), wq: r(D*D, 0.5), wk: r(D*D, 0.5), wv: r(D*D, 0.5), bq: r(D, 0.1), bv: r(D, 0.1),
			ln2g: one(D), ln2b: r(D, 0.1), w1: r(D*D, 0.5), w2: r(D*D, 0.5), b1: r(D, 0.1), b2: r(D, 0.1)})
	}
	return e
}

// TestSequenceGradientsMatchFiniteDifferences checks every gradient of the
// sequence encoder's graph — layer norm, causal multi-head attention with
// padding, the dense projections and the next-item loss — against central
// differences of the loss, after a run on other inputs (the ops keep
// buffers and a backward cache across runs: nothing of that run may leak
// into the next).
func TestSequenceGradientsMatchFiniteDifferences(t *testing.T) {
	for _, K := range []int{0, 3} { // BCE with a negative per position; softmax over 3 shared negatives
		t.Run(map[int]string{0: "bce", 3: "sampled softmax"}[K], func(t *testing.T) { checkSeqGradients(t, K) })
	}
}

func checkSeqGradients(t *testing.T, K int) {
	rng := rand.New(rand.NewPCG(3, 4))
	const D, L, heads, B = 8, 5, 2, 2
	e := tinySeqEncoder(rng, D, L, heads, 2)
	sg, err := newSeqGraph(e, B, K)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	for r := range sg.next {
		sg.next[r] = float32(r % 4)
	}
	for k := range K {
		sg.negIdx[k] = float32(3 + k) // negative 0 is rows 3, 7's own next item: left out of their softmax
	}
	fill := func(s []float32, scale float64) {
		for i := range s {
			s[i] = float32(rng.NormFloat64() * scale)
		}
	}
	fill(sg.x, 1)
	fill(sg.pos, 0.7)
	fill(sg.neg, 0.7)
	// Sequence 0 is left-padded by two positions, sequence 1 is full; the
	// last position of each has no next item.
	for r := range B * L {
		b, p := r/L, r%L
		sg.valid[r], sg.w[r] = 1, 1
		if b == 0 && p < 2 {
			sg.valid[r], sg.w[r] = 0, 0
			clear(sg.x[r*D : (r+1)*D])
		}
		if p == L-1 {
			sg.w[r] = 0
		}
	}
	x := append([]float32(nil), sg.x...)
	for i := range sg.x {
		sg.x[i] = -sg.x[i] * 0.5
	}
	if err := sg.run(); err != nil {
		t.Fatal(err)
	}
	copy(sg.x, x)
	if err := sg.run(); err != nil {
		t.Fatal(err)
	}
	type param struct {
		name string
		x    []float32
		g    []float32
	}
	ps := []param{{"x", sg.x, append([]float32(nil), sg.gX...)}, {"pos", sg.pos, append([]float32(nil), sg.gPos...)}, {"neg", sg.neg, append([]float32(nil), sg.gNeg...)}}
	names := []string{"ln1g", "ln1b", "wq", "bq", "wk", "wv", "bv", "ln2g", "ln2b", "w1", "b1", "w2", "b2"}
	for i, p := range e.params() {
		n := "lnf"
		if i < len(e.blocks)*len(names) {
			n = names[i%len(names)]
		}
		ps = append(ps, param{n, p, append([]float32(nil), sg.gParams[i]...)})
	}
	lossAt := func() float64 {
		if err := sg.run(); err != nil {
			t.Fatal(err)
		}
		return sg.loss
	}
	// Small enough not to cross the feed-forward ReLU's kinks, large
	// enough for float32 activations.
	const eps = 2e-3
	for _, p := range ps {
		var diff, norm float64
		for k := range p.x {
			old := p.x[k]
			p.x[k] = old + eps
			up := lossAt()
			p.x[k] = old - eps
			down := lossAt()
			p.x[k] = old
			fd := (up - down) / (2 * eps)
			diff += (fd - float64(p.g[k])) * (fd - float64(p.g[k]))
			norm += fd * fd
		}
		if norm == 0 {
			t.Errorf("%s: zero gradient everywhere", p.name)
			continue
		}
		if rel := math.Sqrt(diff / norm); rel > 1e-2 {
			t.Errorf("%s: gradient differs from finite differences by %.2g (relative)", p.name, rel)
		}
	}
	// Padding: nothing flows into the padded positions' inputs.
	for r := range 2 {
		for j := range D {
			if g := ps[0].g[r*D+j]; g != 0 {
				t.Fatalf("padded position %d got gradient %g", r, g)
			}
		}
	}
}

// TestAttentionIsCausal: changing a later position's input never changes
// an earlier position's output.
func TestAttentionIsCausal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const D, L, heads = 8, 6, 2
	e := tinySeqEncoder(rng, D, L, heads, 1)
	sg, err := newSeqGraph(e, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	for i := range sg.x {
		sg.x[i] = float32(rng.NormFloat64())
	}
	for r := range L {
		sg.valid[r] = 1
	}
	if err := sg.run(); err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), sg.h...)
	for j := range D {
		sg.x[4*D+j] += 3
	}
	if err := sg.run(); err != nil {
		t.Fatal(err)
	}
	for r := range L {
		same := true
		for j := range D {
			if sg.h[r*D+j] != before[r*D+j] {
				same = false
			}
		}
		if r < 4 && !same {
			t.Errorf("position %d changed when position 4 did", r)
		}
		if r >= 4 && same {
			t.Errorf("position %d did not change when position 4 did", r)
		}
	}
}

// TestExpf: the softmaxes' float32 exponential against math.Exp.
func TestExpf(t *testing.T) {
	for x := float32(-90); x <= 89; x += 0.0137 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		switch {
		case x < -87:
			if got != 0 {
				t.Fatalf("expf(%g) = %g, want 0", x, got)
			}
		case x > 88.7:
			if !math.IsInf(got, 1) {
				t.Fatalf("expf(%g) = %g, want +Inf", x, got)
			}
		default:
			if rel := math.Abs(got-want) / want; rel > 5e-7 {
				t.Fatalf("expf(%g) = %g, math.Exp %g: relative error %.2g", x, got, want, rel)
			}
		}
	}
	if !math.IsNaN(float64(expf(float32(math.NaN())))) {
		t.Fatal("expf(NaN) is not NaN")
	}
}
