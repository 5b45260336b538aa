package model

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// EvalInput is a full-ranking holdout: for each Users[i], the items it
// interacted with in the test window (Targets[i]) and the items it must not
// be recommended (Exclude[i], ascending; may be nil or shorter than Users).
// Targets that are also excluded can never be hit: the caller decides
// (DESIGN §4 excludes only items bought before the cut-off).
type EvalInput struct {
	Users   []int32
	Targets [][]int32
	Exclude [][]int32
	Ks      []int
	NItems  int
}

// Metrics maps a metric name to its value: for each k in EvalInput.Ks
// "hr@k", "recall@k", "ndcg@k", "map@k", "coverage@k", plus "users", the
// number of users evaluated (those with at least one target).
//
// With T a user's distinct targets, rel_i = 1 when the item at rank i
// (1-based) is in T and hits@k = Σ_{i≤k} rel_i:
//
//	HR@k       = 1 if hits@k > 0 else 0
//	Recall@k   = hits@k / |T|  (not / min(|T|, k): the retail2 protocol's Recall@10)
//	NDCG@k     = Σ_{i≤k} rel_i / log2(i+1)  ÷  Σ_{i≤min(|T|,k)} 1 / log2(i+1)
//	MAP@k      = (1 / min(|T|, k)) · Σ_{i≤k} Precision@i · rel_i
//	Coverage@k = |distinct items in all users' top k| / NItems
//
// HR, Recall, NDCG and MAP are averaged over evaluated users.
type Metrics map[string]float64

// evalChunk is the unit of work and of summation: per-chunk partial sums
// are added in chunk order, so results are identical for any worker count.
const evalChunk = 64

type evalSums struct {
	users int
	m     []float64 // 4 per k: hr, recall, ndcg, map
}

// Evaluate recommends max(Ks) items to every user with ≥ 1 target and
// averages the metrics above, using workers goroutines (≤ 0 means 1).
// A BlockRecommender is called on blocks of users. Deterministic for any
// worker count; stops with ctx's error.
func Evaluate(ctx context.Context, rec Recommender, in EvalInput, workers int) (Metrics, error) {
	if len(in.Targets) != len(in.Users) {
		return nil, fmt.Errorf("evaluate %s: %d users but %d target lists", rec.Name(), len(in.Users), len(in.Targets))
	}
	if len(in.Ks) == 0 {
		return nil, fmt.Errorf("evaluate %s: no cut-offs", rec.Name())
	}
	maxK := 0
	for _, k := range in.Ks {
		if k <= 0 {
			return nil, fmt.Errorf("evaluate %s: cut-off %d must be positive", rec.Name(), k)
		}
		maxK = max(maxK, k)
	}
	if in.NItems <= 0 {
		return nil, fmt.Errorf("evaluate %s: NItems must be positive, got %d", rec.Name(), in.NItems)
	}
	workers = max(workers, 1)
	nChunks := (len(in.Users) + evalChunk - 1) / evalChunk
	sums := make([]evalSums, nChunks)
	covers := make([][][]uint64, workers) // worker → k → bitset
	var next atomic.Int64
	var bad atomic.Value // first out-of-range item, as error
	block, _ := rec.(BlockRecommender)
	exclude := func(b int) []int32 {
		if b < len(in.Exclude) {
			return in.Exclude[b]
		}
		return nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		cov := make([][]uint64, len(in.Ks))
		for q := range cov {
			cov[q] = make([]uint64, (in.NItems+63)/64)
		}
		covers[w] = cov
		wg.Add(1)
		go func() {
			defer wg.Done()
			var users []int32
			var pos []int
			out := make([][]Scored, evalChunk)
			var tset []int32
			idx := make(map[int32]int, evalChunk)
			for {
				c := int(next.Add(1)) - 1
				if c >= nChunks || ctx.Err() != nil || bad.Load() != nil {
					return
				}
				lo, hi := c*evalChunk, min((c+1)*evalChunk, len(in.Users))
				users, pos = users[:0], pos[:0]
				for b := lo; b < hi; b++ {
					if len(in.Targets[b]) > 0 {
						users = append(users, in.Users[b])
						pos = append(pos, b)
					}
				}
				if block != nil {
					clear(idx)
					for _, b := range pos {
						idx[in.Users[b]] = b // a user listed twice in a chunk gets its last exclusion list
					}
					block.RecommendBlock(users, maxK, func(u int32) []int32 { return exclude(idx[u]) }, out[:len(users)])
				} else {
					for q, b := range pos {
						out[q] = rec.Recommend(in.Users[b], maxK, exclude(b), out[q][:0])
					}
				}
				s := evalSums{users: len(users), m: make([]float64, 4*len(in.Ks))}
				for q, b := range pos {
					tset = append(tset[:0], in.Targets[b]...)
					slices.Sort(tset)
					tset = slices.Compact(tset)
					list := out[q]
					for _, r := range list {
						if r.Item < 0 || int(r.Item) >= in.NItems {
							bad.CompareAndSwap(nil, fmt.Errorf("evaluate %s: user %d: recommended item %d outside [0, %d)", rec.Name(), in.Users[b], r.Item, in.NItems))
							return
						}
					}
					for ki, k := range in.Ks {
						hr, rc, nd, ap := userMetrics(list, tset, k)
						s.m[4*ki] += hr
						s.m[4*ki+1] += rc
						s.m[4*ki+2] += nd
						s.m[4*ki+3] += ap
						for _, r := range list[:min(k, len(list))] {
							cov[ki][r.Item>>6] |= 1 << (uint(r.Item) & 63)
						}
					}
				}
				sums[c] = s
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", rec.Name(), err)
	}
	if err, _ := bad.Load().(error); err != nil {
		return nil, err
	}
	total := evalSums{m: make([]float64, 4*len(in.Ks))}
	for _, s := range sums {
		total.users += s.users
		for q, v := range s.m {
			total.m[q] += v
		}
	}
	res := Metrics{"users": float64(total.users)}
	for ki, k := range in.Ks {
		ks := "@" + strconv.Itoa(k)
		n := float64(max(total.users, 1))
		res["hr"+ks] = total.m[4*ki] / n
		res["recall"+ks] = total.m[4*ki+1] / n
		res["ndcg"+ks] = total.m[4*ki+2] / n
		res["map"+ks] = total.m[4*ki+3] / n
		distinct := 0
		for wd := 0; wd < len(covers[0][ki]); wd++ {
			var word uint64
			for w := range covers {
				word |= covers[w][ki][wd]
			}
			distinct += bits.OnesCount64(word)
		}
		res["coverage"+ks] = float64(distinct) / float64(in.NItems)
	}
	return res, nil
}

// userMetrics computes HR, Recall, NDCG and MAP at k for one ranked list
// against the ascending, distinct targets.
func userMetrics(list []Scored, targets []int32, k int) (hr, recall, ndcg, ap float64) {
	hits := 0
	for i, r := range list[:min(k, len(list))] {
		if _, ok := slices.BinarySearch(targets, r.Item); !ok {
			continue
		}
		hits++
		ndcg += 1 / math.Log2(float64(i+2))
		ap += float64(hits) / float64(i+1)
	}
	if hits == 0 {
		return 0, 0, 0, 0
	}
	ideal := 0.0
	m := min(len(targets), k)
	for i := range m {
		ideal += 1 / math.Log2(float64(i+2))
	}
	return 1, float64(hits) / float64(len(targets)), ndcg / ideal, ap / float64(m)
}

// EvaluateSampled is the sampled-negatives protocol of the NCF and SASRec
// papers: each target of a user is ranked against negatives items drawn
// uniformly (seeded by seed and the user) from those not in the user's
// exclusion list and not targets, and
//
//	HR@k = 1 if rank ≤ k,  NDCG@k = 1/log2(rank+1) if rank ≤ k,
//
// averaged over a user's targets and then over users (recall@k = HR@k).
// The ranking is rec's list of max(200, NItems/4) items: an item outside it
// ranks below every listed one, and an unlisted target takes the middle
// rank among the unlisted negatives (a target outside the list ranks below
// ≈ a quarter of all items, so below ~25 of 100 negatives: exact for k ≤ 20).
// Numbers from this protocol overstate full-ranking quality (Krichene &
// Rendle, KDD 2020) and are only for comparison with papers that use it.
func EvaluateSampled(ctx context.Context, rec Recommender, in EvalInput, negatives int, seed uint64, workers int) (Metrics, error) {
	if len(in.Targets) != len(in.Users) {
		return nil, fmt.Errorf("evaluate %s: %d users but %d target lists", rec.Name(), len(in.Users), len(in.Targets))
	}
	if negatives <= 0 || len(in.Ks) == 0 || in.NItems <= 0 {
		return nil, fmt.Errorf("evaluate %s: need negatives, cut-offs and items (%d, %v, %d)", rec.Name(), negatives, in.Ks, in.NItems)
	}
	listLen := min(in.NItems, max(200, in.NItems/4))
	exclude := func(b int) []int32 {
		if b < len(in.Exclude) {
			return in.Exclude[b]
		}
		return nil
	}
	nk := len(in.Ks)
	sums := make([][]float64, len(in.Users)) // per user: hr, ndcg per k
	var next atomic.Int64
	var bad atomic.Value
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos := make([]int32, in.NItems)
			for i := range pos {
				pos[i] = -1
			}
			var list []Scored
			var negs []int32
			for {
				b := int(next.Add(1)) - 1
				if b >= len(in.Users) || ctx.Err() != nil || bad.Load() != nil {
					return
				}
				ts := in.Targets[b]
				if len(ts) == 0 {
					continue
				}
				u := in.Users[b]
				ex := exclude(b)
				list = rec.Recommend(u, listLen, ex, list[:0])
				for r, s := range list {
					if s.Item < 0 || int(s.Item) >= in.NItems {
						bad.CompareAndSwap(nil, fmt.Errorf("evaluate %s: user %d: recommended item %d outside [0, %d)", rec.Name(), u, s.Item, in.NItems))
						return
					}
					if pos[s.Item] < 0 {
						pos[s.Item] = int32(r)
					}
				}
				rng := rand.New(rand.NewPCG(seed, uint64(u)))
				free := in.NItems - len(ex) - len(ts)
				negs = negs[:0]
				for tries := 0; len(negs) < negatives && free > 0 && tries < 100*negatives; tries++ {
					i := int32(rng.IntN(in.NItems))
					if _, x := slices.BinarySearch(ex, i); x || slices.Contains(ts, i) || slices.Contains(negs, i) && free > negatives {
						continue
					}
					negs = append(negs, i)
				}
				m := make([]float64, 2*nk)
				for _, t := range ts {
					above, unlisted := 0, 0
					for _, n := range negs {
						switch {
						case pos[n] < 0:
							unlisted++
						case pos[t] < 0 || pos[n] < pos[t]:
							above++
						}
					}
					rank := 1 + above
					if pos[t] < 0 {
						rank += unlisted / 2
					}
					for ki, k := range in.Ks {
						if rank <= k {
							m[2*ki] += 1
							m[2*ki+1] += 1 / math.Log2(float64(rank+1))
						}
					}
				}
				for q := range m {
					m[q] /= float64(len(ts))
				}
				sums[b] = m
				for _, s := range list {
					pos[s.Item] = -1
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", rec.Name(), err)
	}
	if err, _ := bad.Load().(error); err != nil {
		return nil, err
	}
	users := 0
	tot := make([]float64, 2*nk)
	for _, m := range sums {
		if m == nil {
			continue
		}
		users++
		for q, v := range m {
			tot[q] += v
		}
	}
	res := Metrics{"users": float64(users)}
	n := float64(max(users, 1))
	for ki, k := range in.Ks {
		ks := "@" + strconv.Itoa(k)
		res["hr"+ks] = tot[2*ki] / n
		res["recall"+ks] = tot[2*ki] / n
		res["ndcg"+ks] = tot[2*ki+1] / n
	}
	return res, nil
}
