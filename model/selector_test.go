package model

import (
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
}

func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	for range 300 {
		n := 1 + rng.IntN(300)
		a := make([]float32, n)
		for i := range a {
			a[i] = float32(rng.IntN(1 + rng.IntN(40)))
		}
		k := 1 + rng.IntN(n)
		want := slices.Clone(a)
		slices.Sort(want)
		if got := kthLargest(a, k); got != want[n-k] {
			t.Fatalf("k=%d of %d: %v, want %v", k, n, got, want[n-k])
		}
	}
}
