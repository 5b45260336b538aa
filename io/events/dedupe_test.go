package events

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shelfml/shelf/model"
)

// dedupeReference is the plain definition: a stable sort by (ts, user,
// item, type), then the first of each key.
func dedupeReference(evs []model.Event) ([]model.Event, int64) {
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, compareEvents)
	var out []model.Event
	for i, e := range evs {
		if i > 0 && compareEvents(out[len(out)-1], e) == 0 {
			continue
		}
		out = append(out, e)
	}
	return out, int64(len(evs) - len(out))
}

func TestDedupeMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for trial := range 400 {
		n := rng.IntN(400)
		tsSpan := 1 + rng.IntN(50)
		if trial%4 == 3 { // spans of several radix digits, some keys still repeated
			tsSpan = 1 + rng.IntN(1<<(11+rng.IntN(30)))
		}
		evs := make([]model.Event, n)
		for i := range evs {
			// duplicates of a key differ in quantity: which one is kept shows
			evs[i] = model.Event{TS: uint32(rng.IntN(tsSpan)), User: int32(rng.IntN(4)), Item: int32(rng.IntN(4)),
				Type: uint8(rng.IntN(2)), Quantity: float32(i)}
		}
		// files: a few runs of the input
		var starts []int
		for i := 0; i < n; i += 1 + rng.IntN(n/3+1) {
			starts = append(starts, i)
		}
		switch trial % 3 {
		case 0: // time-ordered input (runs follow one another): the fast path
			slices.SortStableFunc(evs, func(a, b model.Event) int { return cmpInt(a.Time(), b.Time()) })
		case 1: // each file time-ordered, files overlapping in time
			for f, a := range starts {
				b := n
				if f+1 < len(starts) {
					b = starts[f+1]
				}
				slices.SortStableFunc(evs[a:b], func(a, b model.Event) int { return cmpInt(a.Time(), b.Time()) })
			}
		}
		want, wantDups := dedupeReference(evs)
		got, dups := dedupe(slices.Clone(evs), starts)
		if dups != wantDups || !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d events): got %d dups %v\nwant %d dups %v", trial, n, dups, got, wantDups, want)
		}
		if !slices.IsSortedFunc(got, compareEvents) {
			t.Fatalf("trial %d: not in canonical order", trial)
		}
	}
}

// TestSortRunIsStableSort: one file's sort (radix by time, then runs of equal
// times) equals a stable sort, over spans of one to several radix digits.
func TestSortRunIsStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	for trial := range 300 {
		n := rng.IntN(2000)
		span := 1 + rng.IntN(1<<(1+rng.IntN(40)))
		evs := make([]model.Event, n)
		for i := range evs {
			evs[i] = model.Event{TS: uint32(1_700_000_000 + rng.IntN(span)), User: int32(rng.IntN(3)), Item: int32(rng.IntN(3)),
				Type: uint8(rng.IntN(2)), Quantity: float32(i)}
		}
		want := slices.Clone(evs)
		slices.SortStableFunc(want, compareEvents)
		sortRun(evs)
		if !slices.Equal(evs, want) {
			t.Fatalf("trial %d (%d events, span %d): not the stable order", trial, n, span)
		}
	}
}
