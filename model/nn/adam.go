package nn

import (
	"math"
	"slices"

	"github.com/shelfml/shelf/internal/f32"
)

// Adam's usual constants; not worth configuring.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.999
	adamEps   = 1e-8
)

// adamRates returns the bias-corrected step size for step t (1-based),
// computed in float64 so every update is reproducible.
func adamRates(lr float64, t int64) (stepSize float32) {
	c1 := 1 - math.Pow(adamBeta1, float64(t))
	c2 := 1 - math.Pow(adamBeta2, float64(t))
	return float32(lr * math.Sqrt(c2) / c1)
}

// adamUpdate applies one Adam step to p given gradient g and moments m, v
// (all the same length). stepSize comes from adamRates. The loop is
// internal/f32.Adam: vectorised where the CPU allows, bit for bit the scalar
// m = β₁m + (1−β₁)g, v = β₂v + (1−β₂)g², p −= step·m/(√v + ε).
func adamUpdate(p, g, m, v []float32, stepSize float32) {
	c := [6]float32{stepSize, adamBeta1, 1 - adamBeta1, adamBeta2, 1 - adamBeta2, adamEps}
	f32.Adam(p, g, m, v, &c)
}

// sparseGrad accumulates per-row gradients of one batch for a table of rows of
// width dim, so that duplicate rows in a batch get one summed update (lazy
// Adam touches each row once per step). Rows are kept in order of first
// appearance, which makes the update order deterministic.
type sparseGrad struct {
	dim   int
	slot  []int32 // row → index into rows, -1 when untouched this step
	rows  []int32
	grad  []float32 // len(rows)×dim
	touch float32   // keeps apply's prefetching loads alive
}

func newSparseGrad(nRows, dim int) *sparseGrad {
	s := &sparseGrad{dim: dim, slot: make([]int32, nRows)}
	for i := range s.slot {
		s.slot[i] = -1
	}
	return s
}

// add accumulates g (length dim) into row r.
func (s *sparseGrad) add(r int32, g []float32) {
	k := s.slot[r]
	if k < 0 {
		k = int32(len(s.rows))
		s.slot[r] = k
		s.rows = append(s.rows, r)
		s.grad = slices.Grow(s.grad, s.dim)[:len(s.grad)+s.dim]
		clear(s.grad[int(k)*s.dim:])
	}
	f32.AddScaled(s.grad[int(k)*s.dim:int(k+1)*s.dim], 1, g[:s.dim])
}

// apply runs lazy Adam on every touched row of table (with moments m, v),
// adding l2·row to each row's gradient first, then clears the accumulator.
func (s *sparseGrad) apply(table, m, v []float32, l2, stepSize float32) {
	d := s.dim
	// Rows are scattered over tables larger than the caches: load a word of
	// each row's moments first, so that their misses overlap instead of
	// coming one row at a time inside the update loop.
	var touch float32
	for _, r := range s.rows {
		lo := int(r) * d
		touch += m[lo] + v[lo] + m[lo+d-1] + v[lo+d-1]
	}
	s.touch = touch
	for k, r := range s.rows {
		g := s.grad[k*d : (k+1)*d]
		lo, hi := int(r)*d, int(r+1)*d
		if l2 != 0 {
			f32.AddScaled(g, l2, table[lo:hi])
		}
		adamUpdate(table[lo:hi], g, m[lo:hi], v[lo:hi], stepSize)
		s.slot[r] = -1
	}
	s.rows = s.rows[:0]
	s.grad = s.grad[:0]
}
