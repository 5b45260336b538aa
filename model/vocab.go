package model

import "fmt"

// Vocab maps external string ids to dense int32 indices in first-seen order.
type Vocab struct {
	ids   []string
	index map[string]int32
}

// NewVocab returns an empty vocabulary.
func NewVocab() *Vocab { return &Vocab{index: make(map[string]int32)} }

// VocabFromIDs rebuilds a vocabulary whose index i is ids[i].
func VocabFromIDs(ids []string) (*Vocab, error) {
	v := &Vocab{ids: make([]string, 0, len(ids)), index: make(map[string]int32, len(ids))}
	for _, id := range ids {
		if _, dup := v.index[id]; dup {
			return nil, fmt.Errorf("vocab: duplicate id %q", id)
		}
		v.Add(id)
	}
	return v, nil
}

// Add returns the index of id, assigning the next one if id is new.
func (v *Vocab) Add(id string) int32 {
	if i, ok := v.index[id]; ok {
		return i
	}
	i := int32(len(v.ids))
	v.ids = append(v.ids, id)
	v.index[id] = i
	return i
}

// Lookup returns the index of id and whether it is known.
func (v *Vocab) Lookup(id string) (int32, bool) {
	i, ok := v.index[id]
	return i, ok
}

// ID returns the external id of index i.
func (v *Vocab) ID(i int32) string { return v.ids[i] }

// IDs returns the external ids in index order; the slice must not be modified.
func (v *Vocab) IDs() []string { return v.ids }

// Len is the number of ids.
func (v *Vocab) Len() int { return len(v.ids) }
