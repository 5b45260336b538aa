package model

import (
	"cmp"
	"slices"
)

// Scored is one recommended item.
type Scored struct {
	Item   int32
	Score  float32
	Reason int32 // history item that most supports Item; -1 if none
}

// better is the total order of recommendations: higher score first, then
// smaller item id, so every ranking is deterministic.
func better(a, b Scored) bool {
	return a.Score > b.Score || (a.Score == b.Score && a.Item < b.Item)
}

// compareScored orders best first, for slices.SortFunc.
func compareScored(a, b Scored) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return cmp.Compare(a.Item, b.Item)
}

// TopK keeps the k best items pushed into it in a bounded min-heap whose
// root is the worst kept item, so a push costs O(1) when the item does not
// qualify and O(log k) when it does. NaN scores are dropped. Not safe for
// concurrent use; Reset and reuse it to avoid allocations.
type TopK struct {
	k int
	h []Scored
}

// NewTopK returns an empty heap for the k best items (k ≤ 0 keeps none).
func NewTopK(k int) *TopK {
	return &TopK{k: max(k, 0), h: make([]Scored, 0, max(k, 0))}
}

// Reset empties the heap, keeping its capacity.
func (t *TopK) Reset() { t.h = t.h[:0] }

// ResetK empties the heap and changes its bound to k.
func (t *TopK) ResetK(k int) {
	t.k = max(k, 0)
	t.h = slices.Grow(t.h[:0], t.k)
}

// Len is the number of items kept.
func (t *TopK) Len() int { return len(t.h) }

// Push offers item with score; its reason is -1.
func (t *TopK) Push(item int32, score float32) {
	t.PushScored(Scored{Item: item, Score: score, Reason: -1})
}

// PushScored offers s, keeping its Reason.
func (t *TopK) PushScored(s Scored) {
	if s.Score != s.Score { // NaN has no place in a total order
		return
	}
	if len(t.h) < t.k {
		t.h = append(t.h, s)
		t.up(len(t.h) - 1)
		return
	}
	if t.k == 0 || !better(s, t.h[0]) {
		return
	}
	t.h[0] = s
	t.down(0)
}

// accepts reports whether score could enter the heap for some item id; the
// retrieval kernel uses it to skip the exclusion check and the call.
func (t *TopK) accepts(score float32) bool {
	return len(t.h) < t.k || (t.k > 0 && score >= t.h[0].Score)
}

// Sorted appends the kept items to dst, best first, leaving the heap intact.
func (t *TopK) Sorted(dst []Scored) []Scored {
	n := len(dst)
	dst = append(dst, t.h...)
	slices.SortFunc(dst[n:], compareScored)
	return dst
}

func (t *TopK) up(i int) {
	h := t.h
	for i > 0 {
		p := (i - 1) / 2
		if !better(h[p], h[i]) { // parent must be worse than child
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (t *TopK) down(i int) {
	h := t.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		w := l
		if r := l + 1; r < n && better(h[l], h[r]) {
			w = r
		}
		if !better(h[i], h[w]) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}
