package model

import (
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/shelfml/shelf/internal/f32"
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
	head     *PackedHead
	packed   []float32 // item embeddings in 16-item groups (f32.PackItems)
	bias     []float32 // item biases, 16 per group, NaN padding
	tile     int       // item groups per retrieval tile
	ix       *IVF      // approximate retrieval (WithIndex); nil: exact
	nprobe   int       // clusters each user scans with ix
	spread   float32   // weight of a cluster's spread in its probe order (Probe.Spread)
	pool     *sync.Pool
}

// retrievalUsers is the user block of the retrieval: each L1 item tile
// serves all of the block's users (4 per kernel call) before the next tile
// is loaded, so a catalog larger than the caches streams from memory once
// per 256 users. With 16 users, 500k items at dim 32 (64 MB) ran at 88
// GFLOP/s on one core; with 256, 122 (BenchmarkRetrievalBlock).
const retrievalUsers = 256

type mrScratch struct {
	heaps  []*selector
	ptr    []int // per user, next position in its exclusion list
	ex     [][]int32
	warm   []int32 // users of the block served by the model
	slot   []int   // their index in the caller's block
	sorted []Scored
	upack  []float32 // 4 users packed for the kernel
	floor  []float32 // per user, the sampled floor of the scan (−Inf: none)
	sample []float32 // per user, the sampled scores
	// noSample turns the sampled floor off (a rescan after it fell short).
	noSample bool
	// floored and rescanned count the users scanned with a sampled floor
	// and those scanned again without it (read by tests).
	floored, rescanned int
	scores             []float32 // a tile's scores, 64 per item group
	masks              []uint64  // a tile's candidate flags, one word per item group
	items              []int32
	logits             []float32
	mlp                Scratch
	top                *TopK
	// The index's: centroid scores and flags of a quad, the clusters each
	// user probes, the block's users per cluster, and a cluster's users packed.
	cscores []float32
	cmasks  []uint64
	cvals   []float32
	cids    []int32
	ctmp    []float32
	probes  []int32
	cstart  []int
	ccur    []int
	cusers  []int32
	cpack   []float32
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
	r.packed, r.bias = f32.PackItems(m.Item, m.ItemBias, m.NItems, m.Dim)
	r.head = m.PackHead()
	// 16 KiB of item embeddings per tile: half of the 32 KiB L1d.
	r.tile = max(1, 4096/(f32.NR*max(m.Dim, 1)))
	r.pool = newScratchPool()
	return r
}

func newScratchPool() *sync.Pool {
	return &sync.Pool{New: func() any {
		s := &mrScratch{top: NewTopK(0)}
		for range retrievalUsers {
			s.heaps = append(s.heaps, new(selector))
		}
		s.ptr = make([]int, retrievalUsers)
		s.ex = make([][]int32, retrievalUsers)
		return s
	}}
}

// Probe says how many clusters of an index a user scans and in which
// order: by centroid score <u, c> + c_b + Spread·|[u, 1]|·r_c, where r_c is
// the cluster's RMS radius (Spread 0: by centroid score alone; a positive
// one favours wide clusters, whose best items lie further above their
// centroid).
type Probe struct {
	N      int     `json:"nprobe"`
	Spread float32 `json:"spread"`
}

// WithIndex returns r retrieving through ix (built on r's model's items)
// with p's clusters per user instead of the exact scan; r itself is
// unchanged and shares its model and packed data with the result. p.N is
// clamped to [1, ix.NList]; a nil ix gives exact retrieval.
func (r *ModelRecommender) WithIndex(ix *IVF, p Probe) *ModelRecommender {
	out := &ModelRecommender{m: r.m, hist: r.hist, cand: r.cand, fallback: r.fallback, itemNorm: r.itemNorm, head: r.head,
		packed: r.packed, bias: r.bias, tile: r.tile, pool: newScratchPool()}
	if ix != nil {
		out.ix, out.nprobe, out.spread = ix, min(max(p.N, 1), ix.NList), p.Spread
	}
	return out
}

// Model is the ranking model r serves.
func (r *ModelRecommender) Model() *RankingModel { return r.m }

// Index is the index r retrieves through and its probes (nil: exact).
func (r *ModelRecommender) Index() (*IVF, Probe) { return r.ix, Probe{r.nprobe, r.spread} }

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
	r.recommendBlock(users, k, exclude, out, true)
}

// recommendBlock is RecommendBlock; without reasons, warm users' items get
// Reason −1 (the hybrid finds reasons for its final items only).
func (r *ModelRecommender) recommendBlock(users []int32, k int, exclude func(u int32) []int32, out [][]Scored, reasons bool) {
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
		r.retrieve(s.warm, s.ex, s.heaps, s.ptr, s)
		for w, u := range s.warm {
			out[s.slot[w]] = r.rerank(u, k, s.heaps[w], s, out[s.slot[w]], reasons)
		}
	}
}

// rerank scores h's candidates with the full model and appends the best k,
// with their reasons when asked.
func (r *ModelRecommender) rerank(u int32, k int, h *selector, s *mrScratch, dst []Scored, reasons bool) []Scored {
	s.items = s.items[:0]
	for _, c := range h.kept() {
		s.items = append(s.items, c.Item)
	}
	s.logits = grow(s.logits, len(s.items))
	r.m.LogitsPacked(u, s.items, s.logits, &s.mlp, r.head)
	s.top.ResetK(k)
	for q, it := range s.items {
		s.top.Push(it, s.logits[q])
	}
	start := len(dst)
	dst = s.top.Sorted(dst)
	if !reasons {
		return dst
	}
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
// not in ex[w] into heaps[w]. Loop order: item tile (fits L1) → 4 users →
// the kernel over the tile's 16-item groups (internal/f32.ScoreTile), which
// flags the scores at or above each heap's current bar; only flagged scores
// are looked at again (the bar only rises, so a stale one flags extra
// scores, never misses one).
func (r *ModelRecommender) retrieve(us []int32, ex [][]int32, heaps []*selector, ptr []int, s *mrScratch) {
	m := r.m
	d := m.Dim
	ng := len(r.bias) / f32.NR
	for w := range us {
		ptr[w] = 0
	}
	if d == 0 {
		for w := range us {
			for i := range m.NItems {
				if h := heaps[w]; h.accepts(m.ItemBias[i]) {
					offer(h, ex[w], &ptr[w], int32(i), m.ItemBias[i])
				}
			}
		}
		return
	}
	s.scores = grow(s.scores, r.tile*f32.MR*f32.NR)
	if cap(s.masks) < r.tile {
		s.masks = make([]uint64, r.tile)
	}
	quads := (len(us) + f32.MR - 1) / f32.MR
	s.upack = grow(s.upack, quads*f32.MR*d)
	for q := range quads {
		var rows [f32.MR][]float32
		n := 0
		for w := q * f32.MR; w < min((q+1)*f32.MR, len(us)); w++ {
			rows[n] = m.User[int(us[w])*d : int(us[w]+1)*d]
			n++
		}
		f32.PackUsers(s.upack[q*f32.MR*d:(q+1)*f32.MR*d], d, rows[:n]...)
	}
	if r.ix != nil {
		r.scanIVF(us, ex, heaps, s)
		return
	}
	floor := r.sampledBars(us, heaps, s)
	var thr [f32.MR]float32
	for g0 := 0; g0 < ng; g0 += r.tile {
		tg := min(r.tile, ng-g0)
		masks := s.masks[:tg]
		for q := range quads {
			w0 := q * f32.MR
			nw := min(f32.MR, len(us)-w0)
			for j := range f32.MR {
				thr[j] = float32(math.Inf(1)) // padding rows: never flagged
				if j < nw {
					thr[j] = max(heaps[w0+j].bar(), floor[w0+j])
				}
			}
			f32.ScoreTile(d, tg, s.upack[q*f32.MR*d:(q+1)*f32.MR*d], r.packed[g0*f32.NR*d:], r.bias[g0*f32.NR:], &thr, s.scores, masks)
			for g, mk := range masks {
				for mk != 0 {
					bit := bits.TrailingZeros64(mk)
					mk &= mk - 1
					j, c := bit/f32.NR, bit%f32.NR
					w := w0 + j
					sc := s.scores[g*f32.MR*f32.NR+bit]
					if h := heaps[w]; h.accepts(sc) {
						offer(h, ex[w], &ptr[w], int32((g0+g)*f32.NR+c), sc)
					}
				}
			}
		}
	}
	// A sampled floor is exact only if at least C items reached it: users
	// left with fewer are scanned again without one.
	var again []int32
	var slots []int
	for w := range us {
		if floor[w] > float32(math.Inf(-1)) {
			s.floored++
			if len(heaps[w].kept()) < heaps[w].k {
				again, slots = append(again, us[w]), append(slots, w)
			}
		}
	}
	if len(again) > 0 {
		s.rescanned += len(again)
		r.rescan(again, slots, ex, heaps)
	}
}

// sampleGroups is how many 16-item groups the sampled floor scores.
const sampleGroups = 64

// sampledBars returns per user of us a floor for the scan: the score a
// strided sample of item groups (1,024 items) puts at about twice the
// candidate depth C, so that roughly 2C items pass instead of the ~C·ln(N/C)
// that a bar rising from −∞ lets through. −∞ where the catalog is too
// small for it to pay or C is a large share of it.
func (r *ModelRecommender) sampledBars(us []int32, heaps []*selector, s *mrScratch) []float32 {
	s.floor = slices.Grow(s.floor[:0], len(us))[:len(us)]
	for w := range us {
		s.floor[w] = float32(math.Inf(-1))
	}
	ng := len(r.bias) / f32.NR
	if s.noSample || ng < 8*sampleGroups || len(us) == 0 || heaps[0].k*4 > r.m.NItems {
		return s.floor
	}
	d, stride := r.m.Dim, ng/sampleGroups
	quads := (len(us) + f32.MR - 1) / f32.MR
	inf := [f32.MR]float32{float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1))}
	s.sample = grow(s.sample, len(us)*sampleGroups*f32.NR)
	var mask [1]uint64
	var sc [f32.MR * f32.NR]float32
	for q := range quads {
		for k := range sampleGroups {
			g := k * stride
			f32.ScoreTile(d, 1, s.upack[q*f32.MR*d:(q+1)*f32.MR*d], r.packed[g*f32.NR*d:], r.bias[g*f32.NR:], &inf, sc[:], mask[:])
			for j := range f32.MR {
				if w := q*f32.MR + j; w < len(us) {
					copy(s.sample[(w*sampleGroups+k)*f32.NR:], sc[j*f32.NR:(j+1)*f32.NR])
				}
			}
		}
	}
	for w := range us {
		c := heaps[w].k
		if c == 0 {
			continue
		}
		vals := s.sample[w*sampleGroups*f32.NR : (w+1)*sampleGroups*f32.NR]
		n := 0
		for _, v := range vals { // NaN (padding) out
			if v == v {
				vals[n] = v
				n++
			}
		}
		rank := 2*c*sampleGroups*f32.NR/r.m.NItems + 8
		if rank < n {
			s.floor[w] = kthLargest(vals[:n], rank)
		}
	}
	return s.floor
}

// rescan runs the retrieval again, without a sampled floor, for the users
// of a block whose floor let fewer than C items through (slots: their
// places in heaps and ex).
func (r *ModelRecommender) rescan(users []int32, slots []int, ex [][]int32, heaps []*selector) {
	sub := &mrScratch{noSample: true}
	hs := make([]*selector, len(users))
	exs := make([][]int32, len(users))
	for i, w := range slots {
		heaps[w].ResetK(heaps[w].k)
		hs[i], exs[i] = heaps[w], ex[w]
	}
	r.retrieve(users, exs, hs, make([]int, len(users)), sub)
}

// offer pushes item unless it is excluded; ex is ascending and items arrive
// in ascending order per user, so *p only moves forward.
func offer(h *selector, ex []int32, p *int, item int32, s float32) {
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

// scanIVF is retrieve through the index: each user of the block picks its
// nprobe best clusters by centroid score (ties: the smaller cluster); then,
// cluster by cluster, the kernel scores the cluster's items (in L1 tiles)
// for the quads of block users that probe it. Each user's few best clusters
// go first, so that its bar is high before the rest are scanned (the
// result does not depend on the order). s.upack holds the block's users
// packed.
func (r *ModelRecommender) scanIVF(us []int32, ex [][]int32, heaps []*selector, s *mrScratch) {
	ix, d, np := r.ix, r.m.Dim, r.nprobe
	ngc := len(ix.centBias) / f32.NR
	quads := (len(us) + f32.MR - 1) / f32.MR
	s.cscores = grow(s.cscores, ngc*f32.MR*f32.NR)
	if cap(s.cmasks) < ngc {
		s.cmasks = make([]uint64, ngc)
	}
	s.probes = slices.Grow(s.probes[:0], len(us)*np)[:len(us)*np]
	first := min(np, 8)
	inf := [f32.MR]float32{float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1)), float32(math.Inf(1))}
	for q := range quads {
		f32.ScoreTile(d, ngc, s.upack[q*f32.MR*d:(q+1)*f32.MR*d], ix.cent, ix.centBias, &inf, s.cscores, s.cmasks[:ngc])
		for j := 0; j < f32.MR && q*f32.MR+j < len(us); j++ {
			w := q*f32.MR + j
			s.cvals = s.cvals[:0]
			s.cids = s.cids[:0]
			lam := r.spread * ix.queryNorm(r.m.User[int(us[w])*d:int(us[w]+1)*d])
			for c := range ix.NList {
				if v := s.cscores[(c/f32.NR)*f32.MR*f32.NR+j*f32.NR+c%f32.NR]; v == v {
					s.cvals = append(s.cvals, v+lam*ix.radius[c])
					s.cids = append(s.cids, int32(c))
				}
			}
			p := s.probes[w*np : (w+1)*np]
			for i := range p {
				p[i] = -1
			}
			n := topClusters(s.cvals, s.cids, np, first, p, &s.ctmp)
			_ = n
		}
	}
	r.scanClusters(us, ex, heaps, s, 0, first)
	if first < np {
		r.scanClusters(us, ex, heaps, s, first, np)
	}
}

// topClusters writes into p the ids of the n best scores (ties: the
// smaller id; ids ascend), the a best of them first, and returns how many
// it wrote (fewer when there are fewer scores).
func topClusters(vals []float32, ids []int32, n, a int, p []int32, tmp *[]float32) int {
	n = min(n, len(vals))
	a = min(a, n)
	if n == 0 {
		return 0
	}
	kth := func(k int) float32 {
		*tmp = append((*tmp)[:0], vals...)
		return kthLargest(*tmp, k)
	}
	tn, ta := kth(n), kth(a)
	// ties at a threshold go to the smallest ids: count the strictly better
	var aboveN, aboveA int
	for _, v := range vals {
		if v > tn {
			aboveN++
		}
		if v > ta {
			aboveA++
		}
	}
	tieN, tieA := n-aboveN, a-aboveA
	first, rest := 0, a
	for i, v := range vals {
		in := v > tn
		if !in && v == tn && tieN > 0 {
			in = true
			tieN--
		}
		if !in {
			continue
		}
		inA := v > ta
		if !inA && v == ta && tieA > 0 {
			inA = true
			tieA--
		}
		if inA {
			p[first] = ids[i]
			first++
		} else {
			p[rest] = ids[i]
			rest++
		}
	}
	return n
}

// scanClusters scans, for every user w of the block, the clusters
// s.probes[w·nprobe+lo : w·nprobe+hi], cluster-major.
func (r *ModelRecommender) scanClusters(us []int32, ex [][]int32, heaps []*selector, s *mrScratch, lo, hi int) {
	ix, m, d, np := r.ix, r.m, r.m.Dim, r.nprobe
	// The block's users per cluster (counting sort, users ascending).
	s.cstart = slices.Grow(s.cstart[:0], ix.NList+1)[:ix.NList+1]
	clear(s.cstart)
	for w := range us {
		for _, c := range s.probes[w*np+lo : w*np+hi] {
			if c >= 0 {
				s.cstart[c+1]++
			}
		}
	}
	for c := range ix.NList {
		s.cstart[c+1] += s.cstart[c]
	}
	s.cusers = slices.Grow(s.cusers[:0], s.cstart[ix.NList])[:s.cstart[ix.NList]]
	s.ccur = append(s.ccur[:0], s.cstart[:ix.NList]...)
	cur := s.ccur
	for w := range us {
		for _, c := range s.probes[w*np+lo : w*np+hi] {
			if c >= 0 {
				s.cusers[cur[c]] = int32(w)
				cur[c]++
			}
		}
	}
	s.scores = grow(s.scores, r.tile*f32.MR*f32.NR)
	if cap(s.masks) < r.tile {
		s.masks = make([]uint64, r.tile)
	}
	var thr [f32.MR]float32
	for c := range ix.NList {
		list := s.cusers[s.cstart[c]:s.cstart[c+1]]
		g0, g1 := ix.start[c], ix.start[c+1]
		if len(list) == 0 || g0 == g1 {
			continue
		}
		cq := (len(list) + f32.MR - 1) / f32.MR
		s.cpack = grow(s.cpack, cq*f32.MR*d)
		for q := range cq {
			var rows [f32.MR][]float32
			n := 0
			for _, w := range list[q*f32.MR : min((q+1)*f32.MR, len(list))] {
				rows[n] = m.User[int(us[w])*d : int(us[w]+1)*d]
				n++
			}
			f32.PackUsers(s.cpack[q*f32.MR*d:(q+1)*f32.MR*d], d, rows[:n]...)
		}
		for t0 := g0; t0 < g1; t0 += r.tile {
			tg := min(r.tile, g1-t0)
			masks := s.masks[:tg]
			for q := range cq {
				lo := q * f32.MR
				nw := min(f32.MR, len(list)-lo)
				for j := range f32.MR {
					thr[j] = float32(math.Inf(1))
					if j < nw {
						thr[j] = heaps[list[lo+j]].bar()
					}
				}
				f32.ScoreTile(d, tg, s.cpack[q*f32.MR*d:(q+1)*f32.MR*d], ix.packed[t0*f32.NR*d:], ix.bias[t0*f32.NR:], &thr, s.scores, masks)
				for g, mk := range masks {
					for mk != 0 {
						bit := bits.TrailingZeros64(mk)
						mk &= mk - 1
						w := int(list[lo+bit/f32.NR])
						sc := s.scores[g*f32.MR*f32.NR+bit]
						if h := heaps[w]; h.accepts(sc) {
							item := ix.ids[(t0+g)*f32.NR+bit%f32.NR]
							if _, found := slices.BinarySearch(ex[w], item); !found {
								h.PushScored(Scored{Item: item, Score: sc, Reason: -1})
							}
						}
					}
				}
			}
		}
	}
}
