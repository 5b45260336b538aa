package model

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
)

// denseOf is ui as a dense float64 users×items matrix.
func denseOf(ui *CSR) [][]float64 {
	d := make([][]float64, ui.Rows)
	for u := range d {
		d[u] = make([]float64, ui.Cols)
		idx, val := ui.Row(int32(u))
		for q, i := range idx {
			d[u][i] = float64(val[q])
		}
	}
	return d
}

// invertSPD is the float64 Gauss–Jordan inverse (the reference for EASE).
func invertSPD(a [][]float64) [][]float64 {
	n := len(a)
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, 2*n)
		copy(m[i], a[i])
		m[i][n+i] = 1
	}
	for c := range n {
		piv := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[piv][c]) {
				piv = r
			}
		}
		m[c], m[piv] = m[piv], m[c]
		d := m[c][c]
		for j := range m[c] {
			m[c][j] /= d
		}
		for r := range n {
			if r != c && m[r][c] != 0 {
				f := m[r][c]
				for j := range m[r] {
					m[r][j] -= f * m[c][j]
				}
			}
		}
	}
	inv := make([][]float64, n)
	for i := range inv {
		inv[i] = m[i][n:]
	}
	return inv
}

// checkLists compares each row's neighbour list with the reference weights
// ref[i][j] (only positive ones are candidates): the same items where the
// reference is not tied at the cut, and values within tol (relative to the
// row's largest).
func checkLists(t *testing.T, sim *CSR, ref [][]float64, neighbors int, tol float64) {
	t.Helper()
	for i := range sim.Rows {
		idx, val := sim.Row(int32(i))
		var pos []float64
		top := 0.0
		for j, v := range ref[i] {
			if j != i && v > 0 {
				pos = append(pos, v)
				top = max(top, v)
			}
		}
		if want := min(neighbors, len(pos)); len(idx) != want {
			t.Fatalf("row %d: %d neighbours, want %d", i, len(idx), want)
		}
		// the kept values are the largest: none left out beats the smallest kept
		minKept := math.Inf(1)
		for q, j := range idx {
			if j == int32(i) {
				t.Fatalf("row %d lists itself", i)
			}
			if d := math.Abs(float64(val[q]) - ref[i][j]); d > tol*top {
				t.Fatalf("row %d item %d: %g, reference %g", i, j, val[q], ref[i][j])
			}
			minKept = min(minKept, ref[i][j])
		}
		kept := map[int32]bool{}
		for _, j := range idx {
			kept[j] = true
		}
		for j, v := range ref[i] {
			if j != i && !kept[int32(j)] && v > minKept+tol*top {
				t.Fatalf("row %d: item %d (%g) left out, smallest kept %g", i, j, v, minKept)
			}
		}
	}
}

func TestEASEMatchesDenseInverse(t *testing.T) {
	// 300 items: three blocks of the factorisations, the last one partial
	rng := newRand(7)
	const users, items = 500, 300
	r, c, v := randomTriplets(rng, users, items, 6000)
	for i := range v {
		v[i] = 1
	}
	ui := NewCSR(users, items, r, c, v)
	for q := range ui.Val {
		ui.Val[q] = 1
	}
	const lambda = 20
	x := denseOf(ui)
	g := make([][]float64, items)
	for i := range g {
		g[i] = make([]float64, items)
		for j := range g[i] {
			for u := range x {
				g[i][j] += x[u][i] * x[u][j]
			}
		}
		g[i][i] += lambda
	}
	p := invertSPD(g)
	ref := make([][]float64, items)
	for i := range ref {
		ref[i] = make([]float64, items)
		for j := range ref[i] {
			if i != j {
				ref[i][j] = -p[i][j] / p[j][j]
			}
		}
	}
	for _, nb := range []int{items, 25} {
		e, err := NewEASE(context.Background(), ui, nb, lambda, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkLists(t, e.Similarities(), ref, nb, 2e-3)
	}
}

func TestCholeskyAndInverse(t *testing.T) {
	rng := newRand(3)
	for _, n := range []int{1, 5, 128, 129, 260} {
		// a = M·Mᵀ + n·I
		m := make([]float64, n*n)
		for i := range m {
			m[i] = rng.Float64()*2 - 1
		}
		a := make([]float32, n*n)
		ref := make([][]float64, n)
		for i := range n {
			ref[i] = make([]float64, n)
			for j := range n {
				s := 0.0
				for k := range n {
					s += m[i*n+k] * m[j*n+k]
				}
				if i == j {
					s += float64(n)
				}
				ref[i][j] = s
				a[i*n+j] = float32(s)
			}
		}
		ctx := context.Background()
		if err := cholesky(ctx, a, n); err != nil {
			t.Fatal(n, err)
		}
		for i := range n {
			for j := 0; j <= i; j++ {
				s := 0.0
				for k := 0; k <= j; k++ {
					s += float64(a[i*n+k]) * float64(a[j*n+k])
				}
				if math.Abs(s-ref[i][j]) > 1e-4*float64(n) {
					t.Fatalf("n=%d: (L·Lᵀ)[%d][%d] = %g, want %g", n, i, j, s, ref[i][j])
				}
			}
		}
		y := make([]float32, n*n)
		if err := lowerInverse(ctx, a, y, n); err != nil {
			t.Fatal(err)
		}
		if err := gramOfLower(ctx, y, make([]float32, n*n), n); err != nil {
			t.Fatal(err)
		}
		p := y
		inv := invertSPD(ref)
		for i := range n {
			for j := range n {
				if d := math.Abs(float64(p[i*n+j]) - inv[i][j]); d > 1e-5 {
					t.Fatalf("n=%d: P[%d][%d] = %g, want %g", n, i, j, p[i*n+j], inv[i][j])
				}
			}
		}
	}
}

func TestEASEErrors(t *testing.T) {
	ui := NewCSR(3, 3, []int32{0, 1, 2}, []int32{0, 1, 2}, []float32{1, 1, 1})
	ctx := context.Background()
	for _, lambda := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := NewEASE(ctx, ui, 5, lambda, nil); err == nil {
			t.Errorf("lambda %g accepted", lambda)
		}
	}
	if _, err := NewEASE(ctx, ui, 0, 1, nil); err == nil {
		t.Error("0 neighbours accepted")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := NewEASE(cancelled, ui, 5, 1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRP3betaMatchesDenseWalk(t *testing.T) {
	rng := newRand(11)
	const users, items = 60, 40
	r, c, v := randomTriplets(rng, users, items, 400)
	ui := NewCSR(users, items, r, c, v)
	x := denseOf(ui)
	degU := make([]float64, users)
	degI := make([]float64, items)
	for u := range x {
		for i, w := range x[u] {
			degU[u] += w
			degI[i] += w
		}
	}
	for _, beta := range []float64{0, 0.5} {
		ref := make([][]float64, items)
		for i := range ref {
			ref[i] = make([]float64, items)
			if degI[i] == 0 {
				continue
			}
			for j := range ref[i] {
				if degI[j] == 0 {
					continue
				}
				s := 0.0
				for u := range x {
					if degU[u] > 0 {
						s += x[u][i] / degI[i] * x[u][j] / degU[u]
					}
				}
				ref[i][j] = s / math.Pow(degI[j], beta)
			}
		}
		for _, nb := range []int{items, 5} {
			k, err := NewRP3beta(context.Background(), ui, nb, beta, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkLists(t, k.Similarities(), ref, nb, 1e-5)
		}
	}
	if _, err := NewRP3beta(context.Background(), ui, 5, math.NaN(), nil); err == nil {
		t.Error("NaN beta accepted")
	}
}

// BenchmarkEASE times the dense closed form on a retail-sized catalogue
// (4,096 items; about (5/3)·4096³ = 1.1e11 float32 operations).
func BenchmarkEASE(b *testing.B) {
	rng := newRand(1)
	const users, items = 5000, 4096
	r, c, v := randomTriplets(rng, users, items, 200000)
	ui := NewCSR(users, items, r, c, v)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewEASE(context.Background(), ui, 100, 50, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(5.0/3*math.Pow(items, 3)/1e9*float64(b.N)/b.Elapsed().Seconds(), "GFLOP/s")
}

// One pass for several betas gives each beta's own lists.
func TestRP3betaGridMatchesSingle(t *testing.T) {
	rng := newRand(12)
	r, c, v := randomTriplets(rng, 80, 50, 600)
	ui := NewCSR(80, 50, r, c, v)
	betas := []float64{0, 0.3, 0.7}
	grid, err := NewRP3betaGrid(context.Background(), ui, 7, betas, nil)
	if err != nil {
		t.Fatal(err)
	}
	for b, beta := range betas {
		one, err := NewRP3beta(context.Background(), ui, 7, beta, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one.Similarities(), grid[b].Similarities()) {
			t.Fatalf("beta %g: grid lists differ from a single build", beta)
		}
	}
}
