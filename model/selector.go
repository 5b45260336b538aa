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
	fo := floatOrd(f)
	n := 0
	c.tie = c.tie[:0]
	for _, s := range c.buf { // in place: the write index never passes the read one
		o := floatOrd(s.Score)
		c.buf[n] = s
		n += int(uint64(fo-o) >> 63) // kept when above f, without a branch
		if o == fo {
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

// kthLargest is the k-th largest of a (1 ≤ k ≤ len(a), no NaN), reordering
// a. A quickselect whose partitions are branch-free: on scores, whose order
// a branch cannot predict, a compare-and-jump partition mispredicted about
// once per element and was 4–6× slower.
func kthLargest(a []float32, k int) float32 {
	t := k - 1 // position in descending order
	for {
		n := len(a)
		if n <= 16 {
			slices.SortFunc(a, func(x, y float32) int { return int(floatOrd(x) - floatOrd(y)) })
			return a[n-1-t]
		}
		x, y, z := a[0], a[n/2], a[n-1]
		p := max(min(x, y), min(max(x, y), z)) // median of three
		po := floatOrd(p)
		j := 0 // a[:j] > p
		for i, v := range a {
			a[i], a[j] = a[j], v
			j += int(uint64(po-floatOrd(v)) >> 63)
		}
		if t < j {
			a = a[:j]
			continue
		}
		e := j // a[j:e] == p, rare enough for a branch
		for i := j; i < n; i++ {
			if v := a[i]; floatOrd(v) == po {
				a[i], a[e] = a[e], v
				e++
			}
		}
		if t < e {
			return p
		}
		a, t = a[e:], t-e
	}
}

// floatOrd maps a non-NaN float32 to an integer of the same order
// (infinities included, −0 equal to +0).
func floatOrd(f float32) int64 {
	b := int32(math.Float32bits(f + 0)) // −0 + 0 = +0
	return int64(b ^ (b >> 31 & 0x7fffffff))
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
