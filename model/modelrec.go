package model

import (
	"math"
	"sync"
)

// ModelRecommender serves a RankingModel in two stages, so that scoring
// all users × all items never runs the MLP head on every pair:
//
//  1. retrieval: the dot-product tower <U[u], V[i]> + b[i] for a block of
//     users against all items at once (a blocked matrix multiply whose item
//     tile stays in L1), keeping the best `candidates` per user in a heap;
//  2. re-ranking: the full Logits (tower + MLP head) on those candidates only.
//
// The reason of a recommended item i is the user's history item j ≠ i whose
// item embedding has the highest cosine with V[i]. Users outside the model or
// with no history row go to the fallback. Safe for concurrent use.
type ModelRecommender struct {
	m        *RankingModel
	hist     *CSR
	cand     int
	fallback Recommender
	itemNorm []float32
	tile     int // items per retrieval tile
	pool     sync.Pool
}

// retrievalUsers is the user block of the retrieval kernel: its embeddings
// (≤ 16×Dim floats) stay in registers/L1 while an item tile streams by.
const retrievalUsers = 16

type mrScratch struct {
	heaps  []*TopK
	ptr    []int // per user, next position in its exclusion list
	ex     [][]int32
	warm   []int32 // users of the block served by the model
	slot   []int   // their index in the caller's block
	sorted []Scored
	items  []int32
	logits []float32
	mlp    Scratch
	top    *TopK
}

// NewModelRecommender prepares m for serving. history (users × items) gives
// the reasons and decides who is warm; candidates is the retrieval depth
// (clamped to [k, NItems] per call; ≤ 0 means all items).
func NewModelRecommender(m *RankingModel, history *CSR, candidates int, fallback Recommender) *ModelRecommender {
	r := &ModelRecommender{m: m, hist: history, cand: candidates, fallback: fallback}
	r.itemNorm = make([]float32, m.NItems)
	for i := range m.NItems {
		v := m.ItemVec(int32(i))
		r.itemNorm[i] = float32(math.Sqrt(float64(Dot(v, v))))
	}
	// 16 KiB of item embeddings per tile: half of Zen 3's 32 KiB L1d.
	r.tile = max(4, (4096/max(m.Dim, 1))&^3)
	r.pool.New = func() any {
		s := &mrScratch{top: NewTopK(0)}
		for range retrievalUsers {
			s.heaps = append(s.heaps, NewTopK(0))
		}
		s.ptr = make([]int, retrievalUsers)
		s.ex = make([][]int32, retrievalUsers)
		return s
	}
	return r
}

// Name implements Recommender.
func (r *ModelRecommender) Name() string { return "model" }

// Recommend implements Recommender (a block of one user).
func (r *ModelRecommender) Recommend(u int32, k int, exclude []int32, dst []Scored) []Scored {
	out := [][]Scored{dst[len(dst):]}
	r.RecommendBlock([]int32{u}, k, func(int32) []int32 { return exclude }, out)
	return append(dst, out[0]...)
}

func (r *ModelRecommender) warm(u int32) bool {
	return u >= 0 && int(u) < r.m.NUsers && int(u) < r.hist.Rows && r.hist.RowLen(u) > 0
}

// RecommendBlock implements BlockRecommender. Different goroutines may call
// it at the same time on different blocks.
func (r *ModelRecommender) RecommendBlock(users []int32, k int, exclude func(u int32) []int32, out [][]Scored) {
	s := r.pool.Get().(*mrScratch)
	defer r.pool.Put(s)
	exOf := func(u int32) []int32 {
		if exclude == nil {
			return nil
		}
		return exclude(u)
	}
	for b := range users {
		out[b] = out[b][:0]
	}
	if k <= 0 {
		return
	}
	cand := r.cand
	if cand <= 0 || cand > r.m.NItems {
		cand = r.m.NItems
	}
	cand = max(cand, min(k, r.m.NItems))
	for lo := 0; lo < len(users); lo += retrievalUsers {
		hi := min(lo+retrievalUsers, len(users))
		s.warm, s.slot = s.warm[:0], s.slot[:0]
		for b := lo; b < hi; b++ {
			u := users[b]
			if !r.warm(u) {
				if r.fallback != nil {
					out[b] = r.fallback.Recommend(u, k, exOf(u), out[b])
				}
				continue
			}
			s.warm = append(s.warm, u)
			s.slot = append(s.slot, b)
		}
		if len(s.warm) == 0 {
			continue
		}
		for w, u := range s.warm {
			s.ex[w] = exOf(u)
			s.heaps[w].ResetK(cand)
		}
		r.retrieve(s.warm, s.ex, s.heaps, s.ptr)
		for w, u := range s.warm {
			out[s.slot[w]] = r.rerank(u, k, s.heaps[w], s, out[s.slot[w]])
		}
	}
}

// rerank scores h's candidates with the full model and appends the best k
// with their reasons.
func (r *ModelRecommender) rerank(u int32, k int, h *TopK, s *mrScratch, dst []Scored) []Scored {
	s.items = s.items[:0]
	for _, c := range h.h {
		s.items = append(s.items, c.Item)
	}
	s.logits = grow(s.logits, len(s.items))
	r.m.Logits(u, s.items, s.logits, &s.mlp)
	s.top.ResetK(k)
	for q, it := range s.items {
		s.top.Push(it, s.logits[q])
	}
	start := len(dst)
	dst = s.top.Sorted(dst)
	hist, _ := r.hist.Row(u)
	for q := start; q < len(dst); q++ {
		dst[q].Reason = r.reason(hist, dst[q].Item)
	}
	return dst
}

// reason is the history item j ≠ i with the highest cosine(V[j], V[i]).
func (r *ModelRecommender) reason(hist []int32, i int32) int32 {
	vi, ni := r.m.ItemVec(i), r.itemNorm[i]
	if ni == 0 {
		return -1
	}
	best, bestCos := int32(-1), float32(math.Inf(-1))
	for _, j := range hist {
		if j == i || int(j) >= r.m.NItems || r.itemNorm[j] == 0 {
			continue
		}
		c := Dot(vi, r.m.ItemVec(j)) / (ni * r.itemNorm[j])
		if c > bestCos {
			best, bestCos = j, c
		}
	}
	return best
}

// retrieve pushes <U[u], V[i]> + b[i] of every user in us and every item
// not in ex[w] into heaps[w]. Loop order: item tile (fits L1) → user pair →
// item quad, with a 2×4 register-blocked dot-product kernel.
func (r *ModelRecommender) retrieve(us []int32, ex [][]int32, heaps []*TopK, ptr []int) {
	m := r.m
	d := m.Dim
	n := m.NItems
	for w := range us {
		ptr[w] = 0
	}
	for t0 := 0; t0 < n; t0 += r.tile {
		t1 := min(t0+r.tile, n)
		for w := 0; w < len(us); w += 2 {
			w1 := min(w+1, len(us)-1) // odd block: the last user twice, second copy ignored
			u0 := m.User[int(us[w])*d : int(us[w]+1)*d]
			u1 := m.User[int(us[w1])*d : int(us[w1]+1)*d]
			h0, h1 := heaps[w], heaps[w1]
			pair := w1 != w
			i := t0
			for ; i+4 <= t1; i += 4 {
				v0 := m.Item[i*d : (i+1)*d]
				v1 := m.Item[(i+1)*d : (i+2)*d]
				v2 := m.Item[(i+2)*d : (i+3)*d]
				v3 := m.Item[(i+3)*d : (i+4)*d]
				a00, a01, a02, a03, a10, a11, a12, a13 := dot2x4(u0, u1, v0, v1, v2, v3)
				b := m.ItemBias[i : i+4 : i+4]
				it := int32(i)
				if s := a00 + b[0]; h0.accepts(s) {
					offer(h0, ex[w], &ptr[w], it, s)
				}
				if s := a01 + b[1]; h0.accepts(s) {
					offer(h0, ex[w], &ptr[w], it+1, s)
				}
				if s := a02 + b[2]; h0.accepts(s) {
					offer(h0, ex[w], &ptr[w], it+2, s)
				}
				if s := a03 + b[3]; h0.accepts(s) {
					offer(h0, ex[w], &ptr[w], it+3, s)
				}
				if !pair {
					continue
				}
				if s := a10 + b[0]; h1.accepts(s) {
					offer(h1, ex[w1], &ptr[w1], it, s)
				}
				if s := a11 + b[1]; h1.accepts(s) {
					offer(h1, ex[w1], &ptr[w1], it+1, s)
				}
				if s := a12 + b[2]; h1.accepts(s) {
					offer(h1, ex[w1], &ptr[w1], it+2, s)
				}
				if s := a13 + b[3]; h1.accepts(s) {
					offer(h1, ex[w1], &ptr[w1], it+3, s)
				}
			}
			for ; i < t1; i++ {
				v := m.Item[i*d : (i+1)*d]
				if s := Dot(u0, v) + m.ItemBias[i]; h0.accepts(s) {
					offer(h0, ex[w], &ptr[w], int32(i), s)
				}
				if s := Dot(u1, v) + m.ItemBias[i]; pair && h1.accepts(s) {
					offer(h1, ex[w1], &ptr[w1], int32(i), s)
				}
			}
		}
	}
}

// offer pushes item unless it is excluded; ex is ascending and items arrive
// in ascending order per user, so *p only moves forward.
func offer(h *TopK, ex []int32, p *int, item int32, s float32) {
	q := *p
	for q < len(ex) && ex[q] < item {
		q++
	}
	*p = q
	if q < len(ex) && ex[q] == item {
		return
	}
	h.PushScored(Scored{Item: item, Score: s, Reason: -1})
}

// dot2x4 computes the 8 inner products of u0, u1 with v0..v3 (all of
// length len(u0)): 6 loads feed 8 multiply-adds per step.
func dot2x4(u0, u1, v0, v1, v2, v3 []float32) (a00, a01, a02, a03, a10, a11, a12, a13 float32) {
	n := len(u0)
	u1, v0, v1, v2, v3 = u1[:n], v0[:n], v1[:n], v2[:n], v3[:n]
	for k := 0; k < n; k++ {
		x0, x1 := u0[k], u1[k]
		y0, y1, y2, y3 := v0[k], v1[k], v2[k], v3[k]
		a00 += x0 * y0
		a01 += x0 * y1
		a02 += x0 * y2
		a03 += x0 * y3
		a10 += x1 * y0
		a11 += x1 * y1
		a12 += x1 * y2
		a13 += x1 * y3
	}
	return
}
