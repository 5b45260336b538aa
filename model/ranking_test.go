package model

import (
	"math"
	"slices"
	"testing"
)

// naiveLogit is the textbook forward pass of one (user, item) pair.
func naiveLogit(m *RankingModel, u, i int32) float32 {
	uv, iv := m.UserVec(u), m.ItemVec(i)
	x := append(append(append([]float32{}, uv...), iv...), make([]float32, m.Dim)...)
	for k := range m.Dim {
		x[2*m.Dim+k] = uv[k] * iv[k]
	}
	for li, l := range m.Layers {
		y := append([]float32{}, l.B...)
		for k, xv := range x {
			if xv == 0 {
				continue
			}
			for o := range l.Out {
				y[o] += xv * l.W[k*l.Out+o]
			}
		}
		if li < len(m.Layers)-1 {
			for o := range y {
				y[o] = max(y[o], 0)
			}
		}
		x = y
	}
	return x[0] + Dot(uv, iv) + m.ItemBias[i]
}

func TestLogitsMatchesNaive(t *testing.T) {
	tests := []struct {
		name              string
		users, items, dim int
	}{
		{"small", 3, 10, 4},
		{"odd dim", 4, 17, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := randomModel(newRand(31), tt.users, tt.items, tt.dim, 6)
			items := make([]int32, tt.items)
			for i := range items {
				items[i] = int32(tt.items - 1 - i)
			}
			out, one, packed := make([]float32, tt.items), make([]float32, 1), make([]float32, tt.items)
			head := m.PackHead()
			var s Scratch
			for u := range int32(tt.users) {
				m.Logits(u, items, out, &s)
				m.LogitsPacked(u, items, packed, &s, head)
				if !slices.Equal(out, packed) {
					t.Fatalf("user %d: packed head %v, per-call packing %v", u, packed, out)
				}
				for q, it := range items {
					// the head runs on fused multiply-adds: equal to the naive
					// product up to rounding
					if want := naiveLogit(m, u, it); math.Abs(float64(out[q]-want)) > 1e-5*(1+math.Abs(float64(want))) {
						t.Fatalf("user %d item %d: %v, want %v", u, it, out[q], want)
					}
					// and exactly the same whatever else is scored in the call
					m.Logits(u, []int32{it}, one, &s)
					if one[0] != out[q] {
						t.Fatalf("user %d item %d: %v alone, %v among %d items", u, it, one[0], out[q], len(items))
					}
				}
			}
		})
	}
}
