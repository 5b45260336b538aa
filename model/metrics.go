package model

import (
	"context"
	"fmt"
	"math"
	"math/bits"
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
