package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTopKMatchesSort(t *testing.T) {
	tests := []struct {
		name   string
		n, k   int
		levels int // distinct score values: few → many ties
	}{
		{"k zero", 10, 0, 5},
		{"k larger than n", 5, 10, 100},
		{"many ties", 500, 20, 3},
		{"distinct", 1000, 50, 1 << 30},
		{"k one", 100, 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(tt.n)))
			all := make([]Scored, tt.n)
			for i := range all {
				all[i] = Scored{Item: int32(i), Score: float32(rng.IntN(tt.levels)), Reason: -1}
			}
			rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			h := NewTopK(tt.k)
			h.Push(99999, float32(math.NaN())) // dropped
			for _, s := range all {
				h.Push(s.Item, s.Score)
			}
			want := slices.Clone(all)
			slices.SortFunc(want, compareScored)
			want = want[:min(tt.k, len(want))]
			prefix := []Scored{{Item: -7}}
			got := h.Sorted(prefix)
			if got[0].Item != -7 || !slices.Equal(got[1:], want) {
				t.Fatalf("got %v\nwant %v", got[1:], want)
			}
			if again := h.Sorted(nil); !slices.Equal(again, want) {
				t.Fatal("Sorted changed the heap")
			}
			h.Reset()
			if h.Len() != 0 || len(h.Sorted(nil)) != 0 {
				t.Fatal("Reset left items")
			}
		})
	}
}

func TestPopularity(t *testing.T) {
	p := NewPopularity(6,
		[]int32{3, 1, 3, 4, 1, 5},
		[]float32{1, 2, 1, 2, 0.5, 2})
	// scores: 1→2.5, 3→2, 4→2, 5→2, 0→0, 2→0
	tests := []struct {
		name    string
		k       int
		exclude []int32
		want    []int32
	}{
		{"top 3", 3, nil, []int32{1, 3, 4}},
		{"all with ties by id", 10, nil, []int32{1, 3, 4, 5, 0, 2}},
		{"exclusions", 3, []int32{1, 4}, []int32{3, 5, 0}},
		{"k zero", 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Recommend(7, tt.k, tt.exclude, nil)
			var items []int32
			for _, s := range got {
				items = append(items, s.Item)
				if s.Reason != -1 || s.Score != p.Score(s.Item) {
					t.Fatalf("bad entry %+v", s)
				}
			}
			if !slices.Equal(items, tt.want) {
				t.Fatalf("got %v, want %v", items, tt.want)
			}
		})
	}
}

func BenchmarkTopKPush(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	scores := make([]float32, 1<<16)
	for i := range scores {
		scores[i] = rng.Float32()
	}
	h := NewTopK(200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Reset()
		for j, s := range scores {
			h.Push(int32(j), s)
		}
	}
	b.ReportMetric(float64(b.N)*float64(len(scores))/b.Elapsed().Seconds()/1e6, "Mpush/s")
}
