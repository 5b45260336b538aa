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

// Event is one accepted, id-mapped behaviour row.
type Event struct {
	TS       int64 // unix seconds, UTC
	User     int32
	Item     int32
	Type     uint8 // index into Interactions.Types
	Quantity float32
	Price    float32
}

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
