package model

import (
	"math"
	"slices"
)

// selector keeps the k best items offered to it (by the order of TopK:
// higher score, then smaller item), like TopK but for the retrieval's
// stream of mostly-qualifying scores: an offer is an append, and when the
// buffer holds 2k + 64 entries a quickselect keeps the best k and raises
// the bar to the k-th score. Per offered item that is O(1) amortised,
// against O(log k) for each of the many heap insertions early in a scan.
type selector struct {
	k     int
	buf   []Scored
	floor float32 // the k-th best score since the last compaction, −Inf before
	sc    []float32
	tie   []Scored
}

func (c *selector) ResetK(k int) {
	c.k = max(k, 0)
	c.buf = slices.Grow(c.buf[:0], 2*c.k+64)
	c.floor = float32(math.Inf(-1))
}

// bar is the lowest score worth offering: −Inf until the first compaction,
// +Inf when k is 0.
func (c *selector) bar() float32 {
	if c.k == 0 {
		return float32(math.Inf(1))
	}
	return c.floor
}

func (c *selector) accepts(score float32) bool { return c.k > 0 && score >= c.floor }

// PushScored offers s (NaN scores are dropped).
func (c *selector) PushScored(s Scored) {
	if s.Score != s.Score || !c.accepts(s.Score) {
		return
	}
	c.buf = append(c.buf, s)
	if len(c.buf) >= 2*c.k+64 {
		c.compact()
	}
}

// compact keeps the k best of the buffer: the k-th best score f by a
// quickselect over the scores alone, then every item above f and, of those
// scoring exactly f, the smallest items.
func (c *selector) compact() {
	if len(c.buf) <= c.k {
		return
	}
	c.sc = c.sc[:0]
	for _, s := range c.buf {
		c.sc = append(c.sc, s.Score)
	}
	f := kthLargest(c.sc, c.k)
	n := 0
	c.tie = c.tie[:0]
	for _, s := range c.buf { // in place: the write index never passes the read one
		if s.Score > f {
			c.buf[n] = s
			n++
		} else if s.Score == f {
			c.tie = append(c.tie, s)
		}
	}
	want := c.k - n
	if len(c.tie) > want {
		slices.SortFunc(c.tie, compareScored)
	}
	n += copy(c.buf[n:], c.tie[:min(want, len(c.tie))])
	c.buf = c.buf[:n]
	c.floor = f
}

// kthLargest is the k-th largest of a (1 ≤ k ≤ len(a)), reordering a.
func kthLargest(a []float32, k int) float32 {
	t := k - 1 // position in descending order
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if a[mid] > a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] > a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
			if a[mid] > a[lo] {
				a[mid], a[lo] = a[lo], a[mid]
			}
		}
		p := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] > p {
				i++
			}
			for p > a[j] {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case t <= j:
			hi = j
		case t >= i:
			lo = i
		default:
			return p
		}
	}
	return a[t]
}

// kept is the k best items offered, in no particular order.
func (c *selector) kept() []Scored {
	c.compact()
	return c.buf
}

// Sorted appends the kept items to dst, best first.
func (c *selector) Sorted(dst []Scored) []Scored {
	n := len(dst)
	dst = append(dst, c.kept()...)
	slices.SortFunc(dst[n:], compareScored)
	return dst
}
