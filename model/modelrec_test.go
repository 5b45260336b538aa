package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// bruteReason is the reference for ModelRecommender's reasons.
func bruteReason(m *RankingModel, hist []int32, i int32) int32 {
	best, bestCos := int32(-1), math.Inf(-1)
	vi := m.ItemVec(i)
	for _, j := range hist {
		if j == i {
			continue
		}
		vj := m.ItemVec(j)
		var dot, ni, nj float64
		for q := range vi {
			dot += float64(vi[q]) * float64(vj[q])
			ni += float64(vi[q]) * float64(vi[q])
			nj += float64(vj[q]) * float64(vj[q])
		}
		if c := dot / math.Sqrt(ni*nj); c > bestCos+1e-6 {
			best, bestCos = j, c
		}
	}
	return best
}

type modelFixture struct {
	m    *RankingModel
	hist *CSR
	pop  *Popularity
	ex   [][]int32 // per user
}

func newModelFixture(seed uint64, nUsers, nItems, dim int) modelFixture {
	rng := rand.New(rand.NewPCG(seed, 7))
	m := randomModel(rng, nUsers, nItems, dim, 8)
	// users ≥ nUsers-3 have no history; the history also knows 2 users the model does not
	r, c, v := randomTriplets(rng, nUsers-3, nItems, 6*nUsers)
	r = append(r, int32(nUsers), int32(nUsers+1))
	c = append(c, 0, 1)
	v = append(v, 1, 1)
	f := modelFixture{m: m, hist: NewCSR(nUsers+2, nItems, r, c, v), pop: NewPopularity(nItems, c, v)}
	for range nUsers + 2 {
		f.ex = append(f.ex, randomExclude(rng, nItems, 0.1))
	}
	return f
}

func (f modelFixture) exclude(u int32) []int32 {
	if int(u) < len(f.ex) {
		return f.ex[u]
	}
	return nil
}

func TestModelRecommenderMatchesBruteForce(t *testing.T) {
	tests := []struct {
		name                string
		nUsers, nItems, dim int
	}{
		{"aligned", 20, 64, 16},
		{"ragged", 37, 203, 13},
		{"tiny", 5, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newModelFixture(uint64(tt.nItems), tt.nUsers, tt.nItems, tt.dim)
			rec := NewModelRecommender(f.m, f.hist, tt.nItems, f.pop)
			users := make([]int32, tt.nUsers+3)
			for u := range users {
				users[u] = int32(u) // includes cold users and two outside the model
			}
			for _, k := range []int{1, 10, tt.nItems} {
				out := make([][]Scored, len(users))
				rec.RecommendBlock(users, k, f.exclude, out)
				var s Scratch
				for b, u := range users {
					var want []Scored
					if !rec.warm(u) {
						if int(u) < len(f.ex) {
							want = f.pop.Recommend(u, k, f.ex[u], nil)
						}
					} else {
						all := make([]int32, tt.nItems)
						for i := range all {
							all[i] = int32(i)
						}
						logits := make([]float32, tt.nItems)
						f.m.Logits(u, all, logits, &s)
						want = bruteTop(logits, f.ex[u], k)
						hist, _ := f.hist.Row(u)
						for q := range want {
							want[q].Reason = bruteReason(f.m, hist, want[q].Item)
						}
					}
					if int(u) >= len(f.ex) {
						continue // not in the exclusion fixture: only check it does not crash
					}
					if !slices.Equal(out[b], want) {
						t.Fatalf("user %d k %d:\n got %v\nwant %v", u, k, out[b], want)
					}
					if single := rec.Recommend(u, k, f.ex[u], nil); !slices.Equal(single, want) {
						t.Fatalf("user %d k %d: Recommend differs from RecommendBlock", u, k)
					}
				}
			}
		})
	}
}

func TestModelRetrievalTopC(t *testing.T) {
	f := newModelFixture(9, 33, 301, 24)
	for _, c := range []int{1, 17, 100} {
		rec := NewModelRecommender(f.m, f.hist, c, f.pop)
		s := rec.pool.Get().(*mrScratch)
		for lo := 0; lo < f.m.NUsers; lo += retrievalUsers {
			us := make([]int32, 0, retrievalUsers)
			for u := lo; u < min(lo+retrievalUsers, f.m.NUsers); u++ {
				us = append(us, int32(u))
				s.ex[u-lo] = f.ex[u]
				s.heaps[u-lo].ResetK(c)
			}
			rec.retrieve(us, s.ex, s.heaps, s.ptr, s)
			for w, u := range us {
				checkTopC(t, f, u, c, s.heaps[w].Sorted(nil))
			}
		}
		rec.pool.Put(s)
	}
}

// checkTopC fails t unless got (best first) is user u's brute-force top c
// of the retrieval scores, excluded items left out.
func checkTopC(t *testing.T, f modelFixture, u int32, c int, got []Scored) {
	t.Helper()
	bf := make([]float32, f.m.NItems)
	for i := range bf {
		bf[i] = f.m.Retrieval(u, int32(i))
	}
	want := bruteTop(bf, f.ex[u], c)
	if len(got) != len(want) {
		t.Fatalf("user %d C %d: %d candidates, want %d", u, c, len(got), len(want))
	}
	cut := want[len(want)-1].Score
	for q := range got {
		// summation order differs from Dot: allow ulp-level swaps at the cut only
		if math.Abs(float64(got[q].Score-bf[got[q].Item])) > 1e-4 {
			t.Fatalf("user %d item %d: retrieval %v, brute force %v", u, got[q].Item, got[q].Score, bf[got[q].Item])
		}
		if got[q].Item != want[q].Item && math.Abs(float64(want[q].Score-cut)) > 1e-4 &&
			math.Abs(float64(want[q].Score-got[q].Score)) > 1e-4 {
			t.Fatalf("user %d C %d rank %d: got %+v, want %+v", u, c, q, got[q], want[q])
		}
		if slices.Contains(f.ex[u], got[q].Item) {
			t.Fatalf("user %d: excluded item %d retrieved", u, got[q].Item)
		}
	}
}

func TestModelRecommenderFewCandidates(t *testing.T) {
	// with C < NItems the result is the Logits ranking of the retrieved set
	f := newModelFixture(11, 10, 150, 8)
	rec := NewModelRecommender(f.m, f.hist, 30, nil)
	var s Scratch
	for u := range int32(7) {
		got := rec.Recommend(u, 10, f.ex[u], nil)
		bf := make([]float32, f.m.NItems)
		for i := range bf {
			bf[i] = f.m.Retrieval(u, int32(i))
		}
		cands := bruteTop(bf, f.ex[u], 30)
		items := make([]int32, len(cands))
		for q, c := range cands {
			items[q] = c.Item
		}
		logits := make([]float32, len(items))
		f.m.Logits(u, items, logits, &s)
		full := make([]float32, f.m.NItems)
		for i := range full {
			full[i] = float32(math.Inf(-1))
		}
		for q, it := range items {
			full[it] = logits[q]
		}
		want := bruteTop(full, f.ex[u], 10)
		for q := range got {
			if got[q].Item != want[q].Item || got[q].Score != want[q].Score {
				t.Fatalf("user %d rank %d: got %+v want %+v", u, q, got[q], want[q])
			}
		}
	}
	if got := rec.Recommend(9, 5, nil, nil); len(got) != 0 { // cold, no fallback
		t.Fatalf("cold user without fallback: %v", got)
	}
}

func BenchmarkRetrievalBlock(b *testing.B) {
	for _, c := range []struct{ dim, nItems int }{{32, 20000}, {64, 20000}, {32, 500000}} {
		dim, nItems := c.dim, c.nItems
		b.Run("dim="+strconv.Itoa(dim)+"/items="+strconv.Itoa(nItems), func(b *testing.B) {
			const nUsers, cand = 512, 200
			rng := rand.New(rand.NewPCG(12, 12))
			m := randomModel(rng, nUsers, nItems, dim, 8)
			hist := NewCSR(nUsers, nItems, nil, nil, nil)
			rec := NewModelRecommender(m, hist, cand, nil)
			s := rec.pool.Get().(*mrScratch)
			us := make([]int32, retrievalUsers)
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				for w := range us {
					us[w] = int32((it*retrievalUsers + w) % nUsers)
					s.heaps[w].ResetK(cand)
				}
				rec.retrieve(us, s.ex, s.heaps, s.ptr, s)
			}
			flops := 2 * float64(retrievalUsers) * float64(nItems) * float64(dim) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(float64(retrievalUsers)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

func BenchmarkModelRecommendBlock(b *testing.B) {
	const nUsers, nItems, dim = 256, 20000, 32
	rng := rand.New(rand.NewPCG(13, 13))
	m := randomModel(rng, nUsers, nItems, dim, 64)
	r, c, v := randomTriplets(rng, nUsers, nItems, 20*nUsers)
	rec := NewModelRecommender(m, NewCSR(nUsers, nItems, r, c, v), 200, nil)
	users := make([]int32, 64)
	out := make([][]Scored, len(users))
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		for q := range users {
			users[q] = int32((it*len(users) + q) % nUsers)
		}
		rec.RecommendBlock(users, 20, nil, out)
	}
	b.ReportMetric(float64(len(users))*float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// TestModelRetrievalSampledFloor: on a catalog large enough for the sampled
// floor, retrieval still returns the brute-force top C, including users
// whose exclusions leave fewer than C items (their floor falls short and
// they are scanned again without it).
func TestModelRetrievalSampledFloor(t *testing.T) {
	const nUsers, nItems = 40, 9000
	f := newModelFixture(11, nUsers, nItems, 8)
	rng := rand.New(rand.NewPCG(12, 12))
	for u := range 3 { // all but 60 items excluded
		keep := map[int32]bool{}
		for len(keep) < 60 {
			keep[int32(rng.IntN(nItems))] = true
		}
		f.ex[u] = f.ex[u][:0]
		for i := range int32(nItems) {
			if !keep[i] {
				f.ex[u] = append(f.ex[u], i)
			}
		}
	}
	for _, c := range []int{10, 100} {
		rec := NewModelRecommender(f.m, f.hist, c, f.pop)
		s := rec.pool.Get().(*mrScratch)
		s.floored, s.rescanned = 0, 0
		us := make([]int32, nUsers)
		for u := range us {
			us[u] = int32(u)
			s.ex[u] = f.ex[u]
			s.heaps[u].ResetK(c)
		}
		rec.retrieve(us, s.ex, s.heaps, s.ptr, s)
		if s.floored != nUsers || s.rescanned < 3 {
			t.Fatalf("C %d: %d users with a sampled floor, %d rescanned; want %d and ≥ 3", c, s.floored, s.rescanned, nUsers)
		}
		for w, u := range us {
			checkTopC(t, f, u, c, s.heaps[w].Sorted(nil))
		}
		rec.pool.Put(s)
	}
}
