package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSelectorKeepsTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, tc := range []struct{ n, k, levels int }{{0, 5, 10}, {3, 5, 10}, {1000, 1, 1000}, {5000, 200, 1 << 20}, {5000, 200, 7}, {777, 0, 5}, {3000, 250, 3}} {
		var sel selector
		sel.ResetK(tc.k)
		top := NewTopK(tc.k)
		for i := range tc.n {
			// few distinct scores: ties are broken by item, as in TopK
			s := Scored{Item: int32(i), Score: float32(rng.IntN(tc.levels)), Reason: -1}
			top.PushScored(s)
			sel.PushScored(s)
		}
		got, want := sel.Sorted(nil), top.Sorted(nil)
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d k=%d levels=%d:\n got %v\nwant %v", tc.n, tc.k, tc.levels, got, want)
		}
	}
	// −0 and +0 are the same score: ties broken by item, as in TopK.
	var sel selector
	sel.ResetK(50)
	top := NewTopK(50)
	for i := range 2000 {
		sc := []float32{0, float32(math.Copysign(0, -1)), -1, float32(math.Inf(-1))}[rng.IntN(4)]
		if i%97 == 0 {
			sc = float32(math.Inf(1))
		}
		s := Scored{Item: int32(i), Score: sc, Reason: -1}
		top.PushScored(s)
		sel.PushScored(s)
	}
	got, want := sel.Sorted(nil), top.Sorted(nil)
	for i := range want {
		if got[i].Item != want[i].Item || got[i].Score != want[i].Score {
			t.Fatalf("signed zeros: got %v, want %v", got, want)
		}
	}
}

func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	inf := float32(math.Inf(1))
	for range 3000 {
		n := 1 + rng.IntN(600)
		a := make([]float32, n)
		for i := range a {
			switch rng.IntN(4) {
			case 0: // few levels: ties
				a[i] = float32(rng.IntN(1 + rng.IntN(40)))
			case 1:
				a[i] = float32(rng.NormFloat64())
			default:
				a[i] = []float32{inf, -inf, 0, float32(math.Copysign(0, -1)), 1e-40, -3}[rng.IntN(6)]
			}
		}
		if rng.IntN(3) == 0 {
			slices.Sort(a) // sorted input: the median-of-three pivot's case
		}
		k := 1 + rng.IntN(n)
		want := slices.Clone(a)
		slices.Sort(want)
		if got := kthLargest(a, k); got != want[n-k] {
			t.Fatalf("k=%d of %d: %v, want %v", k, n, got, want[n-k])
		}
	}
}

// BenchmarkKthLargest selects from a pool of distinct arrays: on one array
// again and again the branch predictor learns the data.
func BenchmarkKthLargest(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct{ n, k int }{{464, 200}, {1024, 28}} {
		pool := make([][]float32, 256)
		for p := range pool {
			pool[p] = make([]float32, tc.n)
			for i := range pool[p] {
				pool[p][i] = float32(rng.NormFloat64())
			}
		}
		a := make([]float32, tc.n)
		b.Run(fmt.Sprintf("n=%d/k=%d", tc.n, tc.k), func(b *testing.B) {
			i := 0
			for b.Loop() {
				copy(a, pool[i%len(pool)])
				i++
				kthLargest(a, tc.k)
			}
		})
	}
}
