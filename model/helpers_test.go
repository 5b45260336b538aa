package model

import (
	"math/rand/v2"
	"slices"
)

// randomTriplets returns n coordinate entries in a rows×cols grid with
// positive weights (duplicates likely when n is large).
func randomTriplets(rng *rand.Rand, rows, cols, n int) (r, c []int32, v []float32) {
	for range n {
		r = append(r, int32(rng.IntN(rows)))
		c = append(c, int32(rng.IntN(cols)))
		v = append(v, float32(1+rng.IntN(5)))
	}
	return r, c, v
}

// randomModel builds a RankingModel with one hidden layer of h units.
func randomModel(rng *rand.Rand, nUsers, nItems, dim, h int) *RankingModel {
	vec := func(n int, scale float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = (rng.Float32()*2 - 1) * scale
		}
		return x
	}
	return &RankingModel{
		Dim: dim, NUsers: nUsers, NItems: nItems,
		User: vec(nUsers*dim, 1), Item: vec(nItems*dim, 1), ItemBias: vec(nItems, 0.5),
		Layers: []Dense{
			{In: 3 * dim, Out: h, W: vec(3*dim*h, 0.3), B: vec(h, 0.1)},
			{In: h, Out: 1, W: vec(h, 0.3), B: vec(1, 0.1)},
		},
	}
}

// randomExclude returns ascending distinct items, about frac of nItems.
func randomExclude(rng *rand.Rand, nItems int, frac float64) []int32 {
	var ex []int32
	for i := range nItems {
		if rng.Float64() < frac {
			ex = append(ex, int32(i))
		}
	}
	return ex
}

// bruteTop ranks all items not in ex by score (higher first, smaller id on
// ties) and keeps k.
func bruteTop(score []float32, ex []int32, k int) []Scored {
	var all []Scored
	for i, s := range score {
		if !slices.Contains(ex, int32(i)) {
			all = append(all, Scored{Item: int32(i), Score: s, Reason: -1})
		}
	}
	slices.SortFunc(all, compareScored)
	return all[:min(k, len(all))]
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }
