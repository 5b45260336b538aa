package model

import (
	"context"
	"slices"
	"sort"
	"testing"
)

func TestHybrid(t *testing.T) {
	f := newModelFixture(11, 40, 120, 8)
	mr := NewModelRecommender(f.m, f.hist, 30, f.pop)
	knn, err := NewItemKNN(context.Background(), f.hist, 20, f.pop)
	if err != nil {
		t.Fatal(err)
	}
	users := make([]int32, 42)
	for i := range users {
		users[i] = int32(i)
	}
	run := func(h BlockRecommender) [][]Scored {
		out := make([][]Scored, len(users))
		h.RecommendBlock(users, 10, f.exclude, out)
		return out
	}
	model := run(mr)
	if got := run(NewHybrid(mr, knn, f.pop, 0, 0, 30)); !slices.EqualFunc(got, model, slices.Equal) {
		t.Fatal("beta=gamma=0 must be the model alone")
	}
	for _, w := range [][2]float32{{0.5, 0}, {0.3, 0.3}, {0, 0.6}} {
		h := NewHybrid(mr, knn, f.pop, w[0], w[1], 30)
		a, b := run(h), run(h)
		if !slices.EqualFunc(a, b, slices.Equal) {
			t.Fatalf("%v: not deterministic", w)
		}
		for i, recs := range a {
			u := users[i]
			if len(recs) != 10 {
				t.Fatalf("%v: user %d has %d items", w, u, len(recs))
			}
			hist, _ := f.hist.Row(u)
			for r, s := range recs {
				if slices.Contains(f.exclude(u), s.Item) {
					t.Fatalf("%v: user %d got excluded item %d", w, u, s.Item)
				}
				if r > 0 && s.Score > recs[r-1].Score {
					t.Fatalf("%v: user %d not sorted", w, u)
				}
				if s.Reason >= 0 && !slices.Contains(hist, s.Reason) {
					t.Fatalf("%v: reason %d of user %d is not in the history", w, s.Reason, u)
				}
			}
		}
		// The single-user path agrees with the block path.
		if got := h.Recommend(3, 10, f.exclude(3), nil); !slices.Equal(got, a[3]) {
			t.Fatalf("%v: Recommend and RecommendBlock disagree", w)
		}
	}
	// With almost all weight on ItemKNN the top item has ItemKNN's top score
	// (ties possible) when the user has ItemKNN scores.
	h := NewHybrid(mr, knn, f.pop, 0.999, 0, 30)
	for _, u := range users[:10] {
		k := knn.Recommend(u, 1, f.exclude(u), nil)
		if len(k) == 1 && k[0].Score > 0 {
			got := h.Recommend(u, 1, f.exclude(u), nil)
			hist, w := f.hist.Row(u)
			var sc float32
			for p, j := range hist {
				sc += w[p] * csrAt(knn.Similarities(), j, got[0].Item)
			}
			if d := sc - k[0].Score; d > 1e-4 || d < -1e-4 {
				t.Fatalf("user %d: hybrid top %d has itemknn score %g, best is %g", u, got[0].Item, sc, k[0].Score)
			}
		}
	}
}

// csrAt is m[r, c] by binary search in row r (0 when absent).
func csrAt(m *CSR, r, c int32) float32 {
	idx, val := m.Row(r)
	p := sort.Search(len(idx), func(i int) bool { return idx[i] >= c })
	if p < len(idx) && idx[p] == c {
		return val[p]
	}
	return 0
}

// TestHybridSequence: the sequence component brings its own candidates and,
// with most of the weight, puts its top item first with a reason from the
// history (the item closest to it in the encoder's embedding space).
func TestHybridSequence(t *testing.T) {
	f := newModelFixture(5, 30, 80, 8)
	mr := NewModelRecommender(f.m, f.hist, 20, f.pop)
	knn, err := NewItemKNN(context.Background(), f.hist, 20, f.pop)
	if err != nil {
		t.Fatal(err)
	}
	// States: user u points at item (7u+3) mod 80, which is its sequence
	// top by far: item i's embedding is e_i + 0.3·e_{i+1}.
	n := f.m.NItems
	d := n
	st := &RankingModel{Dim: d, NUsers: f.m.NUsers, NItems: n, User: make([]float32, f.m.NUsers*d),
		Item: make([]float32, n*d), ItemBias: make([]float32, n)}
	for i := range n {
		st.Item[i*d+i], st.Item[i*d+(i+1)%n] = 1, 0.3
	}
	target := func(u int32) int32 { return (7*u + 3) % int32(n) }
	for u := range int32(f.m.NUsers) {
		st.User[int(u)*d+int(target(u))] = 10
	}
	seq := NewModelRecommender(st, f.hist, 20, f.pop)
	plain := NewHybrid(mr, knn, f.pop, 0.3, 0.1, 20)
	h := NewHybrid(mr, knn, f.pop, 0.03, 0.01, 20).WithSequence(seq, 0.9)
	moved := 0
	for u := range int32(f.m.NUsers) {
		ex := f.exclude(u)
		if !mr.warm(u) || slices.Contains(ex, target(u)) {
			continue
		}
		got := h.Recommend(u, 5, ex, nil)
		if len(got) == 0 || got[0].Item != target(u) {
			t.Fatalf("user %d: top %v, want the sequence's item %d first", u, got, target(u))
		}
		hist, _ := f.hist.Row(u)
		if r := got[0].Reason; r < 0 || !slices.Contains(hist, r) {
			t.Fatalf("user %d: reason %d not in the history %v", u, r, hist)
		}
		if p := plain.Recommend(u, 5, ex, nil); len(p) > 0 && p[0].Item != target(u) {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("the sequence component changed no user's first item")
	}
	// δ = 0 is the blend without it.
	a, b := NewHybrid(mr, knn, f.pop, 0.3, 0.1, 20), NewHybrid(mr, knn, f.pop, 0.3, 0.1, 20).WithSequence(seq, 0)
	for u := range int32(f.m.NUsers) {
		if !slices.Equal(a.Recommend(u, 5, f.exclude(u), nil), b.Recommend(u, 5, f.exclude(u), nil)) {
			t.Fatalf("user %d: a zero sequence weight changed the list", u)
		}
	}
}
