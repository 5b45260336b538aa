package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestAliasTableFrequencies(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    []float64
	}{
		{"uniform", []float64{1, 1, 1, 1}},
		{"skewed", []float64{10, 1, 0, 5, 0.5}},
		{"single", []float64{0, 3, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := newAliasTable(tc.w)
			rng := rand.New(rand.NewPCG(1, 2))
			const n = 200000
			counts := make([]float64, len(tc.w))
			for range n {
				counts[at.sample(rng)]++
			}
			var sum float64
			for _, x := range tc.w {
				sum += x
			}
			for i, x := range tc.w {
				if want, got := x/sum, counts[i]/n; math.Abs(want-got) > 0.01 || (x == 0 && got != 0) {
					t.Errorf("item %d: frequency %.4f, want %.4f", i, got, want)
				}
			}
		})
	}
}

func TestNegativesAvoidPositives(t *testing.T) {
	d := RankingData{NUsers: 2, NItems: 50, Positives: []Positive{{0, 1, 1}, {0, 2, 1}, {1, 3, 1}}}
	for i := int32(10); i < 40; i++ {
		d.Positives = append(d.Positives, Positive{User: 1, Item: i, Weight: 1})
	}
	d.UserItems = NewSortedSets(d.NUsers, d.Positives)
	for _, mode := range []string{"uniform", "popularity"} {
		s := newNegSampler(d, mode, 0.75)
		rng := rand.New(rand.NewPCG(3, 4))
		hits := 0
		for range 1000 {
			if n := s.draw(rng, 0); d.UserItems.Contains(0, n) {
				hits++
			}
		}
		// popularity sampling for user 0 can only draw items 1, 2 (its own)
		// and 3, 10..39: a few retries leave almost no hits.
		if hits > 5 {
			t.Errorf("%s: %d of 1000 negatives are positives of the user", mode, hits)
		}
	}
}

func TestRecoverErr(t *testing.T) {
	sentinel := errors.New("boom")
	for _, tc := range []struct {
		name  string
		panic any
		is    error
	}{{"error", sentinel, sentinel}, {"string", "bad shape", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			err := func() (err error) {
				defer recoverErr(&err, "doing it")
				panic(tc.panic)
			}()
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("err %v", err)
			}
		})
	}
}
