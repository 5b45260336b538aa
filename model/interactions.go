package model

import (
	"cmp"
	"slices"
)

// EventType is a configured behaviour type with its interaction weight.
type EventType struct {
	Name     string
	Weight   float32
	Purchase bool // counts as a purchase (exclusion, purchase prediction)
}

// Event is one accepted, id-mapped behaviour row: 24 bytes.
type Event struct {
	// TS is unix seconds, UTC. Ingest accepts rows from 1970 to the run's
	// clock only (ts_before_1970, future_ts), which uint32 holds to 2106.
	TS       uint32
	User     int32
	Item     int32
	Type     uint8 // index into Interactions.Types
	Quantity float32
	Price    float32
}

// Time is e.TS as int64 unix seconds, for arithmetic with cut-offs.
func (e Event) Time() int64 { return int64(e.TS) }

// Interactions is the validated, deduplicated event log of one run.
type Interactions struct {
	Users  *Vocab
	Items  *Vocab
	Types  []EventType
	Events []Event // sorted by (TS, User, Item, Type)
}

// SortEvents puts events into the canonical order every stage relies on.
func SortEvents(ev []Event) {
	slices.SortFunc(ev, func(a, b Event) int {
		if c := cmp.Compare(a.TS, b.TS); c != 0 {
			return c
		}
		if c := cmp.Compare(a.User, b.User); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Item, b.Item); c != 0 {
			return c
		}
		return cmp.Compare(a.Type, b.Type)
	})
}

// IsPurchase reports whether e is of a purchase type.
func (in *Interactions) IsPurchase(e Event) bool { return in.Types[e.Type].Purchase }

// Weight is the configured weight of e's type.
func (in *Interactions) Weight(e Event) float32 { return in.Types[e.Type].Weight }
