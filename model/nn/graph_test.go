package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shelfml/shelf/model"
)

// refLoss is a float64 reference of the graph's cost Σ w·loss(row) for the
// given inputs, used for finite differences.
type refBatch struct {
	B, D              int
	bpr               bool
	u, v, vn          []float64
	bias, biasN, y, w []float64
	layers            [][2][]float64 // W, B
	dims              [][2]int       // In, Out
	masks             [][]float64    // dropout masks per hidden layer (B×Out), nil = none
}

func (rb *refBatch) logit(r int, v, bias []float64) float64 {
	D := rb.D
	ur, vr := rb.u[r*D:(r+1)*D], v[r*D:(r+1)*D]
	x := make([]float64, 3*D)
	dot := 0.0
	for k := range D {
		x[k], x[D+k], x[2*D+k] = ur[k], vr[k], ur[k]*vr[k]
		dot += ur[k] * vr[k]
	}
	for li, l := range rb.layers {
		in, out := rb.dims[li][0], rb.dims[li][1]
		y := make([]float64, out)
		for o := range out {
			s := l[1][o]
			for k := range in {
				s += x[k] * l[0][k*out+o]
			}
			if li < len(rb.layers)-1 && s < 0 {
				s = 0
			}
			if li < len(rb.layers)-1 && rb.masks != nil {
				s *= rb.masks[li][r*out+o]
			}
			y[o] = s
		}
		x = y
	}
	return x[0] + dot + bias[r]
}

func (rb *refBatch) loss() float64 {
	var c float64
	for r := range rb.B {
		z := rb.logit(r, rb.v, rb.bias)
		if rb.bpr {
			c += rb.w[r] * softplus(rb.logit(r, rb.vn, rb.biasN)-z)
		} else {
			c += rb.w[r] * (softplus(z) - rb.y[r]*z)
		}
	}
	return c
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// tinyGraph builds a graph over a random tiny model and fills random inputs.
func tinyGraph(t *testing.T, bpr, dropout bool) (*rankGraph, *model.RankingModel) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	const B, D = 6, 3
	m := initRanking(4, 5, D, []int{5, 4}, rng)
	for i := range m.ItemBias {
		m.ItemBias[i] = float32(rng.NormFloat64())
	}
	for _, l := range m.Layers {
		for k := range l.B {
			l.B[k] = float32(0.3 * rng.NormFloat64())
		}
	}
	rg, err := newRankGraph(m, B, bpr, dropout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rg.Close() })
	fill := func(x []float32, s float64) {
		for i := range x {
			x[i] = float32(s * rng.NormFloat64())
		}
	}
	fill(rg.u, 0.7)
	fill(rg.v, 0.7)
	fill(rg.bias, 0.5)
	if bpr {
		fill(rg.vn, 0.7)
		fill(rg.biasN, 0.5)
	}
	for r := range B {
		rg.y[r] = float32(r % 2)
		rg.w[r] = float32(0.5 + rng.Float64())
	}
	rg.w[B-1] = 0 // a padded row
	for _, mask := range rg.masks {
		fillDropout(mask, 0.5, rng)
	}
	return rg, m
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name         string
		bpr, dropout bool
	}{{"bce", false, false}, {"bpr", true, false}, {"bce dropout", false, true}, {"bpr dropout", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rg, m := tinyGraph(t, tc.bpr, tc.dropout)
			// A run on other inputs first: the layer ops keep their result
			// buffers across runs, so nothing of that run may reach the next.
			u, v := slices.Clone(rg.u), slices.Clone(rg.v)
			for i := range rg.u {
				rg.u[i], rg.v[i] = -2*rg.u[i], 0.3-rg.v[i]
			}
			for range 2 {
				if err := rg.run(); err != nil {
					t.Fatal(err)
				}
				copy(rg.u, u)
				copy(rg.v, v)
			}
			rb := &refBatch{B: rg.B, D: rg.D, bpr: tc.bpr, u: f64(rg.u), v: f64(rg.v), bias: f64(rg.bias), y: f64(rg.y), w: f64(rg.w)}
			if tc.bpr {
				rb.vn, rb.biasN = f64(rg.vn), f64(rg.biasN)
			}
			for _, l := range m.Layers {
				rb.layers = append(rb.layers, [2][]float64{f64(l.W), f64(l.B)})
				rb.dims = append(rb.dims, [2]int{l.In, l.Out})
			}
			for _, mask := range rg.masks {
				rb.masks = append(rb.masks, f64(mask))
			}
			if want := rb.loss(); math.Abs(rg.loss.sum-want) > 1e-5*(1+math.Abs(want)) {
				t.Errorf("batch loss %v, reference %v", rg.loss.sum, want)
			}
			if tc.dropout && (len(rb.masks) != len(m.Layers)-1 || !slices.Contains(rb.masks[0], 0) || !slices.Contains(rb.masks[0], 2)) {
				t.Fatalf("dropout masks %v: want one per hidden layer with zeros and 2s", rb.masks)
			}
			type param struct {
				name string
				x    []float64
				g    []float32
			}
			ps := []param{{"u", rb.u, rg.gU}, {"v", rb.v, rg.gV}, {"bias", rb.bias, rg.gBias}}
			if tc.bpr {
				ps = append(ps, param{"vn", rb.vn, rg.gVn}, param{"bias_n", rb.biasN, rg.gBiasN})
			}
			for i, l := range rb.layers {
				ps = append(ps, param{"w" + string(rune('0'+i)), l[0], rg.gDense[2*i]}, param{"b" + string(rune('0'+i)), l[1], rg.gDense[2*i+1]})
			}
			const eps = 1e-4
			for _, p := range ps {
				var diff, norm float64
				for k := range p.x {
					old := p.x[k]
					p.x[k] = old + eps
					up := rb.loss()
					p.x[k] = old - eps
					down := rb.loss()
					p.x[k] = old
					fd := (up - down) / (2 * eps)
					diff += (fd - float64(p.g[k])) * (fd - float64(p.g[k]))
					norm += fd*fd + float64(p.g[k])*float64(p.g[k])
				}
				rel := math.Sqrt(diff) / math.Max(math.Sqrt(norm), 1e-6)
				t.Logf("%s: rel %.2g (n=%d)", p.name, rel, len(p.x))
				if rel > 1e-2 || math.IsNaN(rel) {
					t.Errorf("%s: relative gradient error %.3g", p.name, rel)
				}
			}
		})
	}
}

func TestGraphLogitsMatchModel(t *testing.T) {
	rg, m := tinyGraph(t, false, false)
	rng := rand.New(rand.NewPCG(3, 4))
	users, items := make([]int32, rg.B), make([]int32, rg.B)
	for r := range rg.B {
		users[r], items[r] = int32(rng.IntN(m.NUsers)), int32(rng.IntN(m.NItems))
		copy(rg.u[r*m.Dim:], m.UserVec(users[r]))
		copy(rg.v[r*m.Dim:], m.ItemVec(items[r]))
		rg.bias[r] = m.ItemBias[items[r]]
	}
	for run := 0; run < 2; run++ { // a second run checks that inputs are re-read
		if err := rg.run(); err != nil {
			t.Fatal(err)
		}
		var s model.Scratch
		out := make([]float32, 1)
		for r := range rg.B {
			m.Logits(users[r], items[r:r+1], out, &s)
			if d := math.Abs(float64(out[0] - rg.z[r])); d > 1e-4 {
				t.Errorf("run %d row %d: graph logit %g, model %g", run, r, rg.z[r], out[0])
			}
		}
		users[0] = (users[0] + 1) % int32(m.NUsers)
		copy(rg.u, m.UserVec(users[0]))
		m.Layers[0].W[0] += 0.5 // the graph aliases the layer weights
	}
}
