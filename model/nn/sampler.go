package nn

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Positive is one training pair with its (time-decayed) weight.
type Positive struct {
	User, Item int32
	Weight     float32
}

// SortedSets holds each user's positive items as a sorted CSR row, for the
// "is this sampled negative one of u's positives" test.
type SortedSets struct {
	Offsets []int64 // len NUsers+1
	Items   []int32
}

// NewSortedSets builds the per-user sorted item sets of ps.
func NewSortedSets(nUsers int, ps []Positive) *SortedSets {
	s := &SortedSets{Offsets: make([]int64, nUsers+1), Items: make([]int32, len(ps))}
	for _, p := range ps {
		s.Offsets[p.User+1]++
	}
	for u := 0; u < nUsers; u++ {
		s.Offsets[u+1] += s.Offsets[u]
	}
	next := slices.Clone(s.Offsets[:nUsers])
	for _, p := range ps {
		s.Items[next[p.User]] = p.Item
		next[p.User]++
	}
	for u := 0; u < nUsers; u++ {
		slices.Sort(s.Items[s.Offsets[u]:s.Offsets[u+1]])
	}
	return s
}

// Contains reports whether item i is one of user u's positives.
func (s *SortedSets) Contains(u, i int32) bool {
	_, ok := slices.BinarySearch(s.Items[s.Offsets[u]:s.Offsets[u+1]], i)
	return ok
}

// aliasTable samples indices in O(1) proportionally to fixed weights (Vose).
type aliasTable struct {
	prob  []float64
	alias []int32
}

func newAliasTable(w []float64) *aliasTable {
	n := len(w)
	t := &aliasTable{prob: make([]float64, n), alias: make([]int32, n)}
	var sum float64
	for _, x := range w {
		sum += x
	}
	scaled := make([]float64, n)
	var small, large []int32
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.prob[s], t.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range large {
		t.prob[i] = 1
	}
	for _, i := range small { // only left by rounding
		t.prob[i] = 1
	}
	return t
}

func (t *aliasTable) sample(rng *rand.Rand) int32 {
	i := rng.IntN(len(t.prob))
	if rng.Float64() < t.prob[i] {
		return int32(i)
	}
	return t.alias[i]
}

// negSampler draws negatives for a user, uniformly or ∝ popularity^alpha,
// retrying a few times to avoid the user's own positives.
type negSampler struct {
	nItems int
	alias  *aliasTable // nil = uniform
	pos    *SortedSets
}

// negRetries bounds the redraws when a negative hits a positive; heavy users
// of a tiny catalogue would otherwise loop for ever.
const negRetries = 5

func newNegSampler(d RankingData, mode string, alpha float64) *negSampler {
	s := &negSampler{nItems: d.NItems, pos: d.UserItems}
	if mode != "popularity" {
		return s
	}
	counts := make([]float64, d.NItems)
	for _, p := range d.Positives {
		counts[p.Item]++
	}
	seen := false
	for i, c := range counts {
		if c > 0 {
			counts[i] = math.Pow(c, alpha)
			seen = true
		}
	}
	if seen {
		s.alias = newAliasTable(counts)
	}
	return s
}

func (s *negSampler) draw(rng *rand.Rand, u int32) int32 {
	var it int32
	for try := 0; try <= negRetries; try++ {
		if s.alias != nil {
			it = s.alias.sample(rng)
		} else {
			it = int32(rng.IntN(s.nItems))
		}
		if !s.pos.Contains(u, it) {
			return it
		}
	}
	return it
}
