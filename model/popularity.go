package model

import (
	"slices"
)

// Recommender produces a full ranking over all items for one user.
// Implementations are safe for concurrent use.
type Recommender interface {
	Name() string
	// Recommend appends the top k items for user u to dst, best first, never
	// an item in exclude (sorted ascending).
	Recommend(u int32, k int, exclude []int32, dst []Scored) []Scored
}

// BlockRecommender is a Recommender that is faster on a block of users at
// once; Evaluate uses it when available.
type BlockRecommender interface {
	Recommender
	// RecommendBlock sets out[b] to the top k items of users[b] (reusing
	// out[b]'s storage), never an item in exclude(users[b]); exclude may be nil.
	RecommendBlock(users []int32, k int, exclude func(u int32) []int32, out [][]Scored)
}

// Blocked makes r a BlockRecommender: its own RecommendBlock when it has
// one, else Recommend user by user.
func Blocked(r Recommender) BlockRecommender {
	if b, ok := r.(BlockRecommender); ok {
		return b
	}
	return blocked{r}
}

type blocked struct{ Recommender }

func (b blocked) RecommendBlock(users []int32, k int, exclude func(u int32) []int32, out [][]Scored) {
	for i, u := range users {
		var ex []int32
		if exclude != nil {
			ex = exclude(u)
		}
		out[i] = b.Recommend(u, k, ex, out[i][:0])
	}
}

// excluded reports whether item is in the ascending list ex.
func excluded(ex []int32, item int32) bool {
	_, ok := slices.BinarySearch(ex, item)
	return ok
}

// Popularity ranks items by their summed, time-decayed interaction weight.
// It is the bar every model must beat and the fallback for cold users.
type Popularity struct {
	score []float32
	order []int32 // items, best first (score desc, item asc)
}

// NewPopularity sums weights[e] into items[e] for each event e; the caller
// passes weights already decayed to the as-of date. Items never seen keep
// score 0 and rank last, by id, so the ranking is total.
func NewPopularity(nItems int, items []int32, weights []float32) *Popularity {
	score := make([]float32, nItems)
	weights = weights[:len(items)]
	for e, it := range items {
		score[it] += weights[e]
	}
	return PopularityOf(score)
}

// PopularityOf ranks items by score (item i's is score[i], which it keeps).
func PopularityOf(score []float32) *Popularity {
	p := &Popularity{score: score, order: make([]int32, len(score))}
	for i := range p.order {
		p.order[i] = int32(i)
	}
	slices.SortFunc(p.order, func(a, b int32) int {
		return compareScored(Scored{Item: a, Score: p.score[a]}, Scored{Item: b, Score: p.score[b]})
	})
	return p
}

// Name implements Recommender.
func (p *Popularity) Name() string { return "popularity" }

// Score is item i's popularity.
func (p *Popularity) Score(i int32) float32 { return p.score[i] }

// Recommend implements Recommender; the user is ignored and reasons are -1.
func (p *Popularity) Recommend(_ int32, k int, exclude []int32, dst []Scored) []Scored {
	for _, it := range p.order {
		if k <= 0 {
			break
		}
		if len(exclude) > 0 && excluded(exclude, it) {
			continue
		}
		dst = append(dst, Scored{Item: it, Score: p.score[it], Reason: -1})
		k--
	}
	return dst
}
