package model

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// ItemKNN is the item-item co-occurrence baseline: cosine similarity between
// item columns of the weighted user×item matrix, pruned to the top
// neighbours of each item, and
//
//	score(u, i) = Σ_{j ∈ hist(u)} w_uj · sim(j, i)
//
// where sim(j, ·) is j's pruned neighbour list. The reason of i is the
// history item j with the largest w_uj·sim(j, i) (smaller j on ties).
type ItemKNN struct {
	ui       *CSR // users × items, weighted history
	sim      *CSR // items × items, top neighbours per row, sorted by column
	fallback Recommender
	scratch  sync.Pool // *knnScratch
}

type knnScratch struct {
	score, best []float32
	reason      []int32 // -1 = untouched
	touched     []int32
	sel         selector
	fill        []Scored
}

// knnWorkers is fixed so that the build's cost is predictable on the
// shared batch nodes; results do not depend on it.
const knnWorkers = 2

// NewItemKNN builds the similarity lists from ui (users' rows, weights ≥ 0)
// keeping the neighbors most similar items of each item. It never builds a
// dense items² matrix: for each item i it accumulates co-occurrences through
// the users who have i, so the cost is Σ_u |row u|². Users without history
// are served by fallback (nil: they get nothing). The result does not depend
// on scheduling. It stops early with ctx's error.
func NewItemKNN(ctx context.Context, ui *CSR, neighbors int, fallback Recommender) (*ItemKNN, error) {
	if neighbors <= 0 {
		return nil, fmt.Errorf("itemknn: neighbors must be positive, got %d", neighbors)
	}
	n := ui.Cols
	iu := ui.Transpose()
	norm := make([]float32, n)
	for i := range n {
		_, v := iu.Row(int32(i))
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		norm[i] = float32(math.Sqrt(s))
	}
	sims, err := coNeighbours(ctx, iu, ui, neighbors, 1, func(i, j int32, acc float32, out []float32) bool {
		if norm[i] == 0 || norm[j] == 0 {
			return false
		}
		out[0] = acc / (norm[i] * norm[j])
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("itemknn: build similarities: %w", err)
	}
	return newItemKNN(ui, sims[0], fallback), nil
}

// newItemKNN scores ui's users with the neighbour lists sim.
func newItemKNN(ui, sim *CSR, fallback Recommender) *ItemKNN {
	n := ui.Cols
	k := &ItemKNN{ui: ui, sim: sim, fallback: fallback}
	k.scratch.New = func() any {
		s := &knnScratch{score: make([]float32, n), best: make([]float32, n), reason: make([]int32, n)}
		for i := range s.reason {
			s.reason[i] = -1
		}
		return s
	}
	return k
}

// coNeighbours builds nOut sets of neighbour lists at once: for every item
// i and every output o, the neighbors items j ≠ i with the largest
// score_o(i, j, acc), where acc = Σ_u left[i,u]·right[u,j] runs over the
// users of i (left is items × users, right users × items) and score writes
// the nOut scores into out, returning false to leave j out of all. The
// accumulation, the expensive part, is shared by the outputs. It never
// holds a dense items² matrix: the cost is Σ_u |row u|², spread over
// knnWorkers, and the lists (sorted by item) do not depend on scheduling.
func coNeighbours(ctx context.Context, left, right *CSR, neighbors, nOut int, score func(i, j int32, acc float32, out []float32) bool) ([]*CSR, error) {
	n := right.Cols
	type nb struct {
		idx []int32
		val []float32
	}
	lists := make([][]nb, nOut)
	for o := range lists {
		lists[o] = make([]nb, n)
	}
	var next atomic.Int64
	var stop atomic.Bool
	const chunk = 64
	var wg sync.WaitGroup
	for range knnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := make([]float32, n)
			seen := make([]bool, n)
			var touched []int32
			tops := make([]*TopK, nOut)
			for o := range tops {
				tops[o] = NewTopK(neighbors)
			}
			vals := make([]float32, nOut)
			var sorted []Scored
			for !stop.Load() {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				if ctx.Err() != nil {
					stop.Store(true)
					return
				}
				for i := lo; i < min(lo+chunk, n); i++ {
					touched = touched[:0]
					users, wu := left.Row(int32(i))
					for p, u := range users {
						w := wu[p]
						items, wi := right.Row(u)
						for q, j := range items {
							if !seen[j] {
								seen[j] = true
								touched = append(touched, j)
							}
							acc[j] += w * wi[q]
						}
					}
					for _, t := range tops {
						t.Reset()
					}
					for _, j := range touched {
						if j != int32(i) && score(int32(i), j, acc[j], vals) {
							for o, t := range tops {
								t.Push(j, vals[o])
							}
						}
						acc[j], seen[j] = 0, false
					}
					for o, t := range tops {
						sorted = t.Sorted(sorted[:0])
						sortByItem(sorted)
						l := nb{idx: make([]int32, len(sorted)), val: make([]float32, len(sorted))}
						for q, s := range sorted {
							l.idx[q], l.val[q] = s.Item, s.Score
						}
						lists[o][i] = l
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]*CSR, nOut)
	for o, ls := range lists {
		sim := &CSR{Rows: n, Cols: n, Ptr: make([]int64, n+1)}
		for i, l := range ls {
			sim.Ptr[i+1] = sim.Ptr[i] + int64(len(l.idx))
		}
		sim.Idx = make([]int32, 0, sim.Ptr[n])
		sim.Val = make([]float32, 0, sim.Ptr[n])
		for _, l := range ls {
			sim.Idx = append(sim.Idx, l.idx...)
			sim.Val = append(sim.Val, l.val...)
		}
		out[o] = sim
	}
	return out, nil
}

func sortByItem(s []Scored) {
	// insertion sort: neighbour lists are short and nearly random
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Item < s[j-1].Item; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Name implements Recommender.
func (k *ItemKNN) Name() string { return "itemknn" }

// Similarities is the pruned items×items similarity matrix (do not modify).
func (k *ItemKNN) Similarities() *CSR { return k.sim }

// Recommend implements Recommender. Users without history get the
// fallback's list. When fewer than k items have a similarity-based score,
// the list is completed from the fallback with score 0 and reason -1.
func (k *ItemKNN) Recommend(u int32, n int, exclude []int32, dst []Scored) []Scored {
	if n <= 0 {
		return dst
	}
	if u < 0 || int(u) >= k.ui.Rows || k.ui.RowLen(u) == 0 {
		if k.fallback == nil {
			return dst
		}
		return k.fallback.Recommend(u, n, exclude, dst)
	}
	s := k.scatter(u)
	defer k.release(s)
	return k.top(u, s, n, exclude, dst)
}

// scatter accumulates user u's scores Σ_j w_uj·sim(j, i) of every item i
// reachable from u's history into a pooled scratch (with, per item, the
// history item contributing most); release it when done.
func (k *ItemKNN) scatter(u int32) *knnScratch {
	s := k.scratch.Get().(*knnScratch)
	s.touched = s.touched[:0]
	hist, wh := k.ui.Row(u)
	for p, j := range hist {
		w := wh[p]
		items, sims := k.sim.Row(j)
		for q, i := range items {
			c := w * sims[q]
			if s.reason[i] < 0 {
				s.touched = append(s.touched, i)
				s.score[i], s.best[i], s.reason[i] = c, c, j
				continue
			}
			s.score[i] += c
			if c > s.best[i] {
				s.best[i], s.reason[i] = c, j
			}
		}
	}
	return s
}

// at is item i's scattered score and reason (0 and −1 when no history item
// reaches it, or when no contribution is positive).
func (s *knnScratch) at(i int32) (float32, int32) {
	if s.reason[i] < 0 {
		return 0, -1
	}
	if s.best[i] > 0 {
		return s.score[i], s.reason[i]
	}
	return s.score[i], -1
}

// release clears s's touched items and returns it to the pool.
func (k *ItemKNN) release(s *knnScratch) {
	for _, i := range s.touched {
		s.reason[i] = -1
	}
	s.touched = s.touched[:0]
	k.scratch.Put(s)
}

// top appends the n best scattered items not in exclude, filled up from the
// fallback when fewer are reachable.
func (k *ItemKNN) top(u int32, s *knnScratch, n int, exclude []int32, dst []Scored) []Scored {
	s.sel.ResetK(n)
	for _, i := range s.touched {
		if sc := s.score[i]; s.sel.accepts(sc) && (len(exclude) == 0 || !excluded(exclude, i)) {
			s.sel.PushScored(Scored{Item: i, Score: sc, Reason: s.reason[i]})
		}
	}
	start := len(dst)
	dst = s.sel.Sorted(dst)
	if got := len(dst) - start; got < n && k.fallback != nil {
		chosen := dst[start:]
		s.fill = k.fallback.Recommend(u, n, exclude, s.fill[:0])
		for _, f := range s.fill {
			if got == n {
				break
			}
			dup := false
			for _, c := range chosen {
				if c.Item == f.Item {
					dup = true
					break
				}
			}
			if !dup {
				dst = append(dst, Scored{Item: f.Item, Score: 0, Reason: -1})
				got++
			}
		}
	}
	return dst
}

// Variant returns an ItemKNN that shares k's similarities pruned to the
// neighbors most similar items of each item (k's own lists when neighbors is
// at least their length) and scores users with hist (users × items, same
// shape as k's matrix; nil = k's) as the history weights w_uj. Building k
// once with the largest neighbour count and deriving the smaller ones is how
// the pipeline tries several on the validation window.
func (k *ItemKNN) Variant(neighbors int, hist *CSR) (*ItemKNN, error) {
	if neighbors <= 0 {
		return nil, fmt.Errorf("itemknn: neighbors must be positive, got %d", neighbors)
	}
	if hist == nil {
		hist = k.ui
	}
	if hist.Rows != k.ui.Rows || hist.Cols != k.ui.Cols {
		return nil, fmt.Errorf("itemknn: history is %d×%d, similarities were built on %d×%d", hist.Rows, hist.Cols, k.ui.Rows, k.ui.Cols)
	}
	sim := k.sim
	maxLen := 0
	for i := range sim.Rows {
		maxLen = max(maxLen, sim.RowLen(int32(i)))
	}
	if neighbors < maxLen {
		sim = pruneRows(k.sim, neighbors)
	}
	v := &ItemKNN{ui: hist, sim: sim, fallback: k.fallback}
	v.scratch.New = k.scratch.New
	return v, nil
}

// pruneRows keeps the n largest values of each row (smaller column on ties),
// in column order.
func pruneRows(m *CSR, n int) *CSR {
	out := &CSR{Rows: m.Rows, Cols: m.Cols, Ptr: make([]int64, m.Rows+1)}
	top := NewTopK(n)
	var sorted []Scored
	for r := range m.Rows {
		idx, val := m.Row(int32(r))
		top.ResetK(n)
		for q, c := range idx {
			top.Push(c, val[q])
		}
		sorted = top.Sorted(sorted[:0])
		sortByItem(sorted)
		for _, s := range sorted {
			out.Idx = append(out.Idx, s.Item)
			out.Val = append(out.Val, s.Score)
		}
		out.Ptr[r+1] = int64(len(out.Idx))
	}
	return out
}
