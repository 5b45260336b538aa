package model

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// denseCosine is the brute-force reference: cosine between item columns.
func denseCosine(ui *CSR) [][]float64 {
	n := ui.Cols
	dense := make([][]float64, ui.Rows)
	for u := range dense {
		dense[u] = make([]float64, n)
		idx, val := ui.Row(int32(u))
		for q, i := range idx {
			dense[u][i] = float64(val[q])
		}
	}
	cos := make([][]float64, n)
	for i := range n {
		cos[i] = make([]float64, n)
		for j := range n {
			var dot, ni, nj float64
			for u := range dense {
				dot += dense[u][i] * dense[u][j]
				ni += dense[u][i] * dense[u][i]
				nj += dense[u][j] * dense[u][j]
			}
			if dot > 0 {
				cos[i][j] = dot / math.Sqrt(ni*nj)
			}
		}
	}
	return cos
}

func TestItemKNNSimilarities(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	r, c, v := randomTriplets(rng, 40, 25, 200)
	ui := NewCSR(40, 25, r, c, v)
	cos := denseCosine(ui)
	tests := []struct {
		name      string
		neighbors int
	}{
		{"all neighbours", 100},
		{"top 3", 3},
		{"top 1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			knn, err := NewItemKNN(context.Background(), ui, tt.neighbors, nil)
			if err != nil {
				t.Fatal(err)
			}
			sim := knn.Similarities()
			for i := range 25 {
				idx, val := sim.Row(int32(i))
				var want []float64
				for j, x := range cos[i] {
					if j != i && x > 0 {
						want = append(want, x)
					}
				}
				slices.SortFunc(want, func(a, b float64) int { return -cmpF(a, b) })
				want = want[:min(tt.neighbors, len(want))]
				if len(idx) != len(want) {
					t.Fatalf("item %d: %d neighbours, want %d", i, len(idx), len(want))
				}
				got := make([]float64, len(val))
				for q, j := range idx {
					if int(j) == i || (q > 0 && idx[q-1] >= j) {
						t.Fatalf("item %d: bad neighbour list %v", i, idx)
					}
					if math.Abs(float64(val[q])-cos[i][j]) > 1e-5 {
						t.Fatalf("sim(%d,%d) = %v, want %v", i, j, val[q], cos[i][j])
					}
					got[q] = float64(val[q])
				}
				slices.SortFunc(got, func(a, b float64) int { return -cmpF(a, b) })
				for q := range got {
					if math.Abs(got[q]-want[q]) > 1e-5 {
						t.Fatalf("item %d: kept %v, want the top %v", i, got, want)
					}
				}
			}
		})
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestItemKNNRecommend(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const nUsers, nItems = 60, 80
	r, c, v := randomTriplets(rng, nUsers-1, nItems, 400) // last user has no history
	ui := NewCSR(nUsers, nItems, r, c, v)
	pop := NewPopularity(nItems, c, v)
	knn, err := NewItemKNN(context.Background(), ui, 10, pop)
	if err != nil {
		t.Fatal(err)
	}
	sim := knn.Similarities()
	for u := range int32(nUsers) {
		ex := randomExclude(rng, nItems, 0.2)
		for _, k := range []int{1, 10, 70} {
			got := knn.Recommend(u, k, ex, nil)
			if ui.RowLen(u) == 0 {
				if want := pop.Recommend(u, k, ex, nil); !slices.Equal(got, want) {
					t.Fatalf("cold user %d: got %v, want popularity %v", u, got, want)
				}
				continue
			}
			// reference: dense accumulation over the history, in history order
			score := make([]float32, nItems)
			best := make([]float32, nItems)
			reason := make([]int32, nItems)
			touched := make([]bool, nItems)
			hist, wh := ui.Row(u)
			for p, j := range hist {
				for i := range int32(nItems) {
					q, ok := slices.BinarySearch(sim.Idx[sim.Ptr[j]:sim.Ptr[j+1]], i)
					if !ok {
						continue
					}
					x := wh[p] * sim.Val[sim.Ptr[j]+int64(q)]
					score[i] += x
					if !touched[i] || x > best[i] {
						best[i], reason[i] = x, j
					}
					touched[i] = true
				}
			}
			var scored []Scored
			for i := range int32(nItems) {
				if touched[i] && !slices.Contains(ex, i) {
					scored = append(scored, Scored{Item: i, Score: score[i], Reason: reason[i]})
				}
			}
			slices.SortFunc(scored, compareScored)
			want := scored[:min(k, len(scored))]
			if len(want) < k { // padded from popularity
				for _, f := range pop.Recommend(u, nItems, ex, nil) {
					if len(want) == k {
						break
					}
					if !slices.ContainsFunc(want, func(s Scored) bool { return s.Item == f.Item }) {
						want = append(want, Scored{Item: f.Item, Score: 0, Reason: -1})
					}
				}
			}
			if len(got) != len(want) {
				t.Fatalf("user %d k %d: %d items, want %d", u, k, len(got), len(want))
			}
			for q := range got {
				if got[q].Item != want[q].Item || got[q].Reason != want[q].Reason || math.Abs(float64(got[q].Score-want[q].Score)) > 1e-5 {
					t.Fatalf("user %d k %d rank %d: got %+v, want %+v", u, k, q, got[q], want[q])
				}
				if slices.Contains(ex, got[q].Item) {
					t.Fatalf("user %d: excluded item %d recommended", u, got[q].Item)
				}
			}
		}
	}
}

func TestItemKNNErrors(t *testing.T) {
	ui := NewCSR(2, 2, []int32{0, 1}, []int32{0, 1}, []float32{1, 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewItemKNN(ctx, ui, 5, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: err %v", err)
	}
	if _, err := NewItemKNN(context.Background(), ui, 0, nil); err == nil {
		t.Fatal("neighbors 0 accepted")
	}
	knn, err := NewItemKNN(context.Background(), ui, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := knn.Recommend(5, 3, nil, nil); len(got) != 0 {
		t.Fatalf("unknown user without fallback: %v", got)
	}
}

// syntheticInteractions draws a power-law-ish user×item matrix like a shop's.
func syntheticInteractions(seed uint64, nUsers, nItems, perUser int) (*CSR, []int32, []float32) {
	rng := rand.New(rand.NewPCG(seed, seed))
	var r, c []int32
	var v []float32
	for u := range nUsers {
		n := 1 + rng.IntN(2*perUser)
		for range n {
			it := int(float64(nItems) * math.Pow(rng.Float64(), 2.5)) // popular items first
			r = append(r, int32(u))
			c = append(c, int32(it))
			v = append(v, float32(1+rng.IntN(5)))
		}
	}
	return NewCSR(nUsers, nItems, r, c, v), c, v
}

func BenchmarkItemKNNBuild(b *testing.B) {
	ui, _, _ := syntheticInteractions(6, 5000, 4000, 40)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := NewItemKNN(context.Background(), ui, 100, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ui.NNZ()), "nnz")
}

func BenchmarkItemKNNRecommend(b *testing.B) {
	ui, c, v := syntheticInteractions(6, 5000, 4000, 40)
	knn, err := NewItemKNN(context.Background(), ui, 100, NewPopularity(4000, c, v))
	if err != nil {
		b.Fatal(err)
	}
	var dst []Scored
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = knn.Recommend(int32(i%5000), 20, nil, dst[:0])
	}
}

// A variant pruned from a longer list equals a direct build, and scores
// with the history weights it is given.
func TestItemKNNVariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const nUsers, nItems = 50, 60
	r, c, v := randomTriplets(rng, nUsers, nItems, 500)
	ui := NewCSR(nUsers, nItems, r, c, v)
	ctx := context.Background()
	big, err := NewItemKNN(ctx, ui, 40, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 5, 17, 40, 100} {
		direct, err := NewItemKNN(ctx, ui, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := big.Variant(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, b := got.Similarities(), direct.Similarities()
		if n <= 40 && (!slices.Equal(a.Ptr, b.Ptr) || !slices.Equal(a.Idx, b.Idx) || !slices.Equal(a.Val, b.Val)) {
			t.Fatalf("neighbors %d: pruned similarities differ from a direct build", n)
		}
	}
	// History weights: doubling one user's weights doubles their scores;
	// zeroing all but one history item leaves that item's neighbours only.
	hist := *ui
	hist.Val = slices.Clone(ui.Val)
	u := int32(3)
	idx, _ := ui.Row(u)
	for p := range idx {
		hist.Val[int(ui.Ptr[u])+p] = 0
	}
	hist.Val[ui.Ptr[u]] = 2
	vk, err := big.Variant(40, &hist)
	if err != nil {
		t.Fatal(err)
	}
	only := idx[0]
	nb, sims := big.Similarities().Row(only)
	got := vk.Recommend(u, len(nb), nil, nil)
	for _, s := range got {
		q, ok := slices.BinarySearch(nb, s.Item)
		if s.Score != 0 && (!ok || math.Abs(float64(s.Score-2*sims[q])) > 1e-6) {
			t.Fatalf("item %d score %g, want 2×sim(%d,·)", s.Item, s.Score, only)
		}
	}
	if _, err := big.Variant(0, nil); err == nil {
		t.Fatal("0 neighbours accepted")
	}
	if _, err := big.Variant(5, NewCSR(2, 2, nil, nil, nil)); err == nil {
		t.Fatal("history of the wrong shape accepted")
	}
}
