package jobs

import (
	"math"
	"testing"

	"github.com/shelfml/shelf/model"
)

// TestHistoryRankedDecay checks the recency-rank weights by hand: per user,
// the most recent item (and items last touched at the same second) weigh
// 1, the next distinct time 0.5^(1/h), and so on, on top of the age decay.
func TestHistoryRankedDecay(t *testing.T) {
	const day = 86400
	s := &slice{
		cutoff: 10 * day,
		// user 0: items 0, 1, 2; user 1: item 1, 3
		ui:  &model.CSR{Rows: 2, Cols: 4, Ptr: []int64{0, 3, 5}, Idx: []int32{0, 1, 2, 1, 3}, Val: []float32{2, 3, 4, 5, 6}},
		age: []uint32{1 * day, 5 * day, 1 * day, 9 * day, 2 * day},
	}
	h := s.historyRanked(true, 0, 2)
	r1 := float32(math.Exp2(-1.0 / 2))
	want := []float32{1, r1, 1, r1, 1}
	for p, w := range want {
		if math.Abs(float64(h.Val[p]-w)) > 1e-6 {
			t.Errorf("binary, rank only: entry %d = %g, want %g", p, h.Val[p], w)
		}
	}
	// Weighted, with a 1-day age half-life as well.
	h = s.historyRanked(false, 1, 2)
	for p, w := range want {
		age := float64(s.age[p]) / day
		w *= s.ui.Val[p] * float32(math.Exp2(-age))
		if math.Abs(float64(h.Val[p]-w)) > 1e-6*math.Abs(float64(w)) {
			t.Errorf("weighted, age and rank: entry %d = %g, want %g", p, h.Val[p], w)
		}
	}
	// 0 leaves the age-only history unchanged, and the input is not modified.
	a, b := s.history(false, 1), s.historyRanked(false, 1, 0)
	for p := range a.Val {
		if a.Val[p] != b.Val[p] {
			t.Fatalf("rank half-life 0 changed entry %d: %g vs %g", p, a.Val[p], b.Val[p])
		}
	}
	if s.ui.Val[0] != 2 || s.ui.Val[4] != 6 {
		t.Fatal("historyRanked modified the slice's matrix")
	}
}
