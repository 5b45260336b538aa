package model

import (
	"cmp"
	"slices"
)

// CSR is a compressed sparse row matrix with int32 column indices and float32
// values: row r holds Idx[Ptr[r]:Ptr[r+1]] (ascending, no duplicates) and the
// matching Val. It is the layout of the user×item interaction matrix
// (~12 bytes per stored entry including Ptr amortisation) and of neighbour lists.
type CSR struct {
	Rows, Cols int
	Ptr        []int64 // len Rows+1
	Idx        []int32
	Val        []float32
}

// NewCSR builds a rows×cols CSR from coordinate triplets (r[i], c[i], v[i]).
// Entries with the same (row, column) are summed; the inputs are not modified.
// Every r[i] must lie in [0, rows) and c[i] in [0, cols): the caller (ingest)
// has already mapped ids to dense indices, so a violation is a programming error.
func NewCSR(rows, cols int, r, c []int32, v []float32) *CSR {
	n := len(r)
	c, v = c[:n], v[:n]
	ptr := make([]int64, rows+1)
	for _, ri := range r {
		ptr[ri+1]++
	}
	for i := 0; i < rows; i++ {
		ptr[i+1] += ptr[i]
	}
	// Counting sort by row: stable, so equal columns stay in input order and
	// duplicates are summed in input order (deterministic floating point).
	idx := make([]int32, n)
	val := make([]float32, n)
	next := slices.Clone(ptr[:rows])
	for i, ri := range r {
		p := next[ri]
		idx[p], val[p] = c[i], v[i]
		next[ri]++
	}
	type entry struct {
		c int32
		v float32
	}
	var tmp []entry
	out := int64(0)
	start := int64(0)
	for row := 0; row < rows; row++ {
		end := ptr[row+1]
		seg := idx[start:end]
		if !slices.IsSorted(seg) {
			tmp = tmp[:0]
			for p := start; p < end; p++ {
				tmp = append(tmp, entry{idx[p], val[p]})
			}
			slices.SortStableFunc(tmp, func(a, b entry) int { return cmp.Compare(a.c, b.c) })
			for q, e := range tmp {
				idx[start+int64(q)], val[start+int64(q)] = e.c, e.v
			}
		}
		ptr[row] = out
		for p := start; p < end; p++ {
			if out > ptr[row] && idx[out-1] == idx[p] {
				val[out-1] += val[p]
				continue
			}
			idx[out], val[out] = idx[p], val[p]
			out++
		}
		start = end
	}
	ptr[rows] = out
	return &CSR{Rows: rows, Cols: cols, Ptr: ptr, Idx: idx[:out:out], Val: val[:out:out]}
}

// Row returns views of row r's column indices and values.
func (m *CSR) Row(r int32) (idx []int32, val []float32) {
	lo, hi := m.Ptr[r], m.Ptr[r+1]
	return m.Idx[lo:hi:hi], m.Val[lo:hi:hi]
}

// RowLen is the number of stored entries in row r.
func (m *CSR) RowLen(r int32) int { return int(m.Ptr[r+1] - m.Ptr[r]) }

// NNZ is the number of stored entries.
func (m *CSR) NNZ() int { return len(m.Idx) }

// Has reports whether (r, c) is stored, by binary search in row r.
func (m *CSR) Has(r, c int32) bool {
	if r < 0 || int(r) >= m.Rows {
		return false
	}
	idx, _ := m.Row(r)
	_, ok := slices.BinarySearch(idx, c)
	return ok
}

// Transpose returns the cols×rows transpose; its rows come out sorted
// because the source rows are visited in order.
func (m *CSR) Transpose() *CSR {
	ptr := make([]int64, m.Cols+1)
	for _, c := range m.Idx {
		ptr[c+1]++
	}
	for i := 0; i < m.Cols; i++ {
		ptr[i+1] += ptr[i]
	}
	next := slices.Clone(ptr[:m.Cols])
	idx := make([]int32, len(m.Idx))
	val := make([]float32, len(m.Val))
	for r := 0; r < m.Rows; r++ {
		for p := m.Ptr[r]; p < m.Ptr[r+1]; p++ {
			c := m.Idx[p]
			q := next[c]
			idx[q], val[q] = int32(r), m.Val[p]
			next[c]++
		}
	}
	return &CSR{Rows: m.Cols, Cols: m.Rows, Ptr: ptr, Idx: idx, Val: val}
}
