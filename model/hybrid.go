package model

import (
	"math"
	"slices"
	"sync"
)

// Hybrid ranks with the neural model and ItemKNN together. For each user:
//
//  1. candidates are the union of the model's top-C (retrieval + MLP re-rank)
//     and ItemKNN's top-C;
//  2. every candidate gets both exact scores: the model's logit and the
//     ItemKNN score Σ_j w_uj·sim(j, i);
//  3. each score is standardised over the user's candidates (z-score) and
//     final = (1−β−γ−δ)·z_model + β·z_knn + γ·z_pop + δ·z_seq, where pop
//     is the time-decayed popularity (whose top-C also joins the candidates
//     when γ > 0) and seq the sequence encoder's <state, item> (its top-C
//     joins when δ > 0; WithSequence).
//
// β and γ are chosen on the validation window (never the test window), so
// the blend is a learned, leakage-free choice; β = γ = 0 is the model alone. The
// reason of an item is ItemKNN's (the history item contributing most to its
// co-occurrence score) and, for items ItemKNN does not reach, the model's
// (the history item with the closest embedding). Where the sequence term is
// the largest of an item's weighted terms, the reason is the history item
// whose sequence-encoder embedding is closest to the item's. Users without
// history go to the model's fallback.
type Hybrid struct {
	model *ModelRecommender
	knn   *ItemKNN
	pop   *Popularity
	beta  float32
	gamma float32
	seq   *ModelRecommender // the sequence encoder's states and item embeddings; nil = none
	delta float32
	cand  int
	pool  sync.Pool // *hybridScratch
}

type hybridScratch struct {
	mlists [][]Scored
	klist  []Scored
	items  []int32
	logit  []float32
	knn    []float32
	pop    []float32
	seqv   []float32
	slists [][]Scored
	at     []int32 // per item: its candidate index for the current user
	plist  []Scored
	reason []int32
	top    *TopK
	mlp    Scratch
	mark   []uint32 // per item: gen when already a candidate of the current user
	gen    uint32
}

// NewHybrid blends m with knn (weight beta) and pop (weight gamma),
// beta+gamma < 1, over the union of the recommenders' top-candidates lists.
func NewHybrid(m *ModelRecommender, knn *ItemKNN, pop *Popularity, beta, gamma float32, candidates int) *Hybrid {
	h := &Hybrid{model: m, knn: knn, pop: pop, beta: beta, gamma: gamma, cand: candidates}
	h.pool.New = func() any { return &hybridScratch{top: NewTopK(0)} }
	return h
}

// Name implements Recommender.
func (h *Hybrid) Name() string { return "hybrid" }

// WithSequence adds the sequence component seq with weight delta
// (beta+gamma+delta ≤ 1) and returns h. seq's history must be the model's.
func (h *Hybrid) WithSequence(seq *ModelRecommender, delta float32) *Hybrid {
	if seq != nil && delta > 0 {
		h.seq, h.delta = seq, delta
	}
	return h
}

// Beta is the weight of ItemKNN in the blend.
func (h *Hybrid) Beta() float32 { return h.beta }

// Recommend implements Recommender.
func (h *Hybrid) Recommend(u int32, k int, exclude []int32, dst []Scored) []Scored {
	out := [][]Scored{dst[len(dst):]}
	h.RecommendBlock([]int32{u}, k, func(int32) []int32 { return exclude }, out)
	return append(dst, out[0]...)
}

// RecommendBlock implements BlockRecommender; safe for concurrent use.
func (h *Hybrid) RecommendBlock(users []int32, k int, exclude func(u int32) []int32, out [][]Scored) {
	if h.beta <= 0 && h.gamma <= 0 && h.delta <= 0 {
		h.model.RecommendBlock(users, k, exclude, out)
		return
	}
	s := h.pool.Get().(*hybridScratch)
	defer h.pool.Put(s)
	c := max(h.cand, k)
	for len(s.mlists) < len(users) {
		s.mlists = append(s.mlists, nil)
	}
	ml := s.mlists[:len(users)]
	h.model.recommendBlock(users, c, exclude, ml, false)
	var sl [][]Scored
	if h.delta > 0 {
		for len(s.slists) < len(users) {
			s.slists = append(s.slists, nil)
		}
		sl = s.slists[:len(users)]
		h.seq.recommendBlock(users, c, exclude, sl, false)
	}
	for b, u := range users {
		out[b] = out[b][:0]
		if !h.model.warm(u) {
			// Cold users: the model already answered from its fallback.
			out[b] = append(out[b], ml[b][:min(k, len(ml[b]))]...)
			continue
		}
		var ex []int32
		if exclude != nil {
			ex = exclude(u)
		}
		ks := h.knn.scatter(u)
		s.klist = h.knn.top(u, ks, c, ex, s.klist[:0])
		s.plist = s.plist[:0]
		if h.gamma > 0 {
			s.plist = h.pop.Recommend(u, c, ex, s.plist)
		}
		var slist []Scored
		if sl != nil {
			slist = sl[b]
		}
		out[b] = h.blend(u, k, ml[b], s.klist, s.plist, slist, ks, s, out[b])
		h.knn.release(ks)
	}
}

func (h *Hybrid) blend(u int32, k int, mlist, klist, plist, slist []Scored, ks *knnScratch, s *hybridScratch, dst []Scored) []Scored {
	// the union of the lists, in list order, deduplicated with per-item
	// marks (a new generation per user instead of clearing)
	if n := h.model.m.NItems; len(s.mark) < n {
		s.mark, s.at, s.gen = make([]uint32, n), make([]int32, n), 0
	}
	s.gen++
	if s.gen == 0 { // wrapped: start over
		clear(s.mark)
		s.gen = 1
	}
	s.items = s.items[:0]
	add := func(list []Scored) {
		for _, x := range list {
			if x.Item >= 0 && int(x.Item) < len(s.mark) && s.mark[x.Item] != s.gen {
				s.mark[x.Item] = s.gen
				s.at[x.Item] = int32(len(s.items))
				s.items = append(s.items, x.Item)
			}
		}
	}
	add(mlist)
	nm := len(s.items)
	add(klist)
	add(plist)
	add(slist)
	n := len(s.items)
	s.logit = grow(s.logit, n)
	s.knn = grow(s.knn, n)
	s.pop = grow(s.pop, n)
	s.reason = s.reason[:0]
	for q, x := range mlist {
		s.logit[q] = x.Score
	}
	if n > nm {
		h.model.m.LogitsPacked(u, s.items[nm:], s.logit[nm:], &s.mlp, h.model.head)
	}
	// ItemKNN's score of every candidate, and its reason: the history item
	// contributing most (read from the user's scattered scores).
	for q, it := range s.items {
		sc, reason := ks.at(it)
		s.knn[q] = sc
		s.pop[q] = h.pop.Score(it)
		s.reason = append(s.reason, reason)
	}
	standardize(s.logit)
	standardize(s.knn)
	standardize(s.pop)
	if h.delta > 0 {
		s.seqv = grow(s.seqv, n)
		h.seq.m.LogitsPacked(u, s.items, s.seqv, &s.mlp, nil)
		standardize(s.seqv)
	}
	wm := max(0, 1-h.beta-h.gamma-h.delta)
	s.top.ResetK(k)
	for q, it := range s.items {
		sc := wm*s.logit[q] + h.beta*s.knn[q] + h.gamma*s.pop[q]
		if h.delta > 0 {
			sc += h.delta * s.seqv[q]
		}
		s.top.PushScored(Scored{Item: it, Score: sc, Reason: s.reason[q]})
	}
	start := len(dst)
	dst = s.top.Sorted(dst)
	// Items ItemKNN does not explain: the closest history item by embedding,
	// or, for a re-purchase, the item itself — found for the final items only.
	hist, _ := h.knn.ui.Row(u)
	for q := start; q < len(dst); q++ {
		if c := s.at[dst[q].Item]; h.delta > 0 && h.delta*s.seqv[c] > max(wm*s.logit[c], h.beta*s.knn[c], h.gamma*s.pop[c]) {
			if r := h.seq.reason(hist, dst[q].Item); r >= 0 {
				dst[q].Reason = r
			}
		}
		if dst[q].Reason < 0 {
			dst[q].Reason = h.model.reason(hist, dst[q].Item)
		}
		if dst[q].Reason < 0 && slices.Contains(hist, dst[q].Item) {
			dst[q].Reason = dst[q].Item
		}
	}
	return dst
}

// standardize turns x into z-scores (all zeros when x is constant).
func standardize(x []float32) {
	if len(x) == 0 {
		return
	}
	var mean, sq float64
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		sq += d * d
	}
	sd := math.Sqrt(sq / float64(len(x)))
	for i, v := range x {
		if sd == 0 {
			x[i] = 0
		} else {
			x[i] = float32((float64(v) - mean) / sd)
		}
	}
}
