package model

import (
	"math/rand/v2"
	"testing"
)

func TestNewCSRMatchesDense(t *testing.T) {
	tests := []struct {
		name            string
		rows, cols, nnz int
	}{
		{"empty", 3, 4, 0},
		{"sparse", 50, 40, 100},
		{"many duplicates", 7, 5, 300},
		{"single column", 20, 1, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.nnz)))
			r, c, v := randomTriplets(rng, tt.rows, tt.cols, tt.nnz)
			dense := make([]float32, tt.rows*tt.cols)
			set := make([]bool, tt.rows*tt.cols)
			for i := range r {
				dense[int(r[i])*tt.cols+int(c[i])] += v[i]
				set[int(r[i])*tt.cols+int(c[i])] = true
			}
			m := NewCSR(tt.rows, tt.cols, r, c, v)
			checkCSR(t, m, tt.rows, tt.cols, dense, set)
			tr := m.Transpose()
			dt := make([]float32, len(dense))
			st := make([]bool, len(set))
			for i := range tt.rows {
				for j := range tt.cols {
					dt[j*tt.rows+i], st[j*tt.rows+i] = dense[i*tt.cols+j], set[i*tt.cols+j]
				}
			}
			checkCSR(t, tr, tt.cols, tt.rows, dt, st)
		})
	}
}

func checkCSR(t *testing.T, m *CSR, rows, cols int, dense []float32, set []bool) {
	t.Helper()
	if m.Rows != rows || m.Cols != cols || len(m.Ptr) != rows+1 {
		t.Fatalf("shape %d×%d ptr %d, want %d×%d", m.Rows, m.Cols, len(m.Ptr), rows, cols)
	}
	nnz := 0
	for r := range rows {
		idx, val := m.Row(int32(r))
		for q := 1; q < len(idx); q++ {
			if idx[q] <= idx[q-1] {
				t.Fatalf("row %d not strictly ascending: %v", r, idx)
			}
		}
		for q, c := range idx {
			if !set[r*cols+int(c)] || val[q] != dense[r*cols+int(c)] {
				t.Fatalf("(%d,%d) = %v, want %v (set %v)", r, c, val[q], dense[r*cols+int(c)], set[r*cols+int(c)])
			}
		}
		for c := range cols {
			if m.Has(int32(r), int32(c)) != set[r*cols+c] {
				t.Fatalf("Has(%d,%d) = %v", r, c, !set[r*cols+c])
			}
			if set[r*cols+c] {
				nnz++
			}
		}
	}
	if m.NNZ() != nnz {
		t.Fatalf("nnz %d, want %d", m.NNZ(), nnz)
	}
	if m.Has(-1, 0) || m.Has(int32(rows), 0) {
		t.Fatal("Has outside the matrix")
	}
}

func TestNewCSRLeavesInputs(t *testing.T) {
	r, c, v := []int32{1, 0, 1}, []int32{2, 1, 0}, []float32{1, 2, 3}
	NewCSR(2, 3, r, c, v)
	if r[0] != 1 || c[0] != 2 || v[0] != 1 {
		t.Fatal("inputs modified")
	}
}
