package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/shelfml/shelf/internal/f32"
)

// The item-item models below share ItemKNN's scoring (Σ over the user's
// history of w_uj · sim(j, i) through pruned neighbour lists) and differ in
// how the lists are built. Each is a candidate for the hybrid's item
// component, chosen on the validation window.

// NewRP3beta builds RP3β neighbour lists (Paudel et al., "Updatable, accurate,
// diverse, and scalable recommendations for interactive applications", 2017;
// the tuned form of Dacrema et al. 2019): the probability of a three-step
// random walk item i → user → item j on the bipartite graph,
//
//	p(i→j) = Σ_u (x_ui / deg i) · (x_uj / deg u),
//
// divided by deg(j)^beta to take popular items down (beta = 0 is the plain
// walk P³α with α = 1). deg is the sum of a row's or column's weights. The
// cost is ItemKNN's: Σ_u |row u|², no dense matrix.
func NewRP3beta(ctx context.Context, ui *CSR, neighbors int, beta float64, fallback Recommender) (*ItemKNN, error) {
	ks, err := NewRP3betaGrid(ctx, ui, neighbors, []float64{beta}, fallback)
	if err != nil {
		return nil, err
	}
	return ks[0], nil
}

// NewRP3betaGrid is NewRP3beta for several betas in one pass: the walk
// probabilities are accumulated once and each beta keeps its own lists.
func NewRP3betaGrid(ctx context.Context, ui *CSR, neighbors int, betas []float64, fallback Recommender) ([]*ItemKNN, error) {
	if neighbors <= 0 {
		return nil, fmt.Errorf("rp3beta: neighbors must be positive, got %d", neighbors)
	}
	if len(betas) == 0 {
		return nil, fmt.Errorf("rp3beta: no beta")
	}
	for _, beta := range betas {
		if math.IsNaN(beta) || beta < 0 || beta > 2 {
			return nil, fmt.Errorf("rp3beta: beta must be in [0, 2], got %g", beta)
		}
	}
	iu := ui.Transpose()
	left := scaleRows(iu)  // x_ui / deg i
	right := scaleRows(ui) // x_uj / deg u
	nb := len(betas)
	pen := make([]float32, ui.Cols*nb) // item j, beta b → deg(j)^-beta
	for j := range ui.Cols {
		_, v := iu.Row(int32(j))
		var d float64
		for _, x := range v {
			d += float64(x)
		}
		if d > 0 {
			for b, beta := range betas {
				pen[j*nb+b] = float32(math.Pow(d, -beta))
			}
		}
	}
	sims, err := coNeighbours(ctx, left, right, neighbors, nb, func(_, j int32, acc float32, out []float32) bool {
		p := pen[int(j)*nb : int(j)*nb+nb]
		if acc <= 0 || p[0] == 0 {
			return false
		}
		for b, x := range p {
			out[b] = acc * x
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("rp3beta: build similarities: %w", err)
	}
	out := make([]*ItemKNN, nb)
	for b, sim := range sims {
		out[b] = newItemKNN(ui, sim, fallback)
	}
	return out, nil
}

// scaleRows is m with each row divided by its sum (empty and zero rows stay).
func scaleRows(m *CSR) *CSR {
	out := &CSR{Rows: m.Rows, Cols: m.Cols, Ptr: m.Ptr, Idx: m.Idx, Val: make([]float32, len(m.Val))}
	for r := range m.Rows {
		lo, hi := m.Ptr[r], m.Ptr[r+1]
		var s float64
		for _, x := range m.Val[lo:hi] {
			s += float64(x)
		}
		if s <= 0 {
			continue
		}
		for p := lo; p < hi; p++ {
			out.Val[p] = float32(float64(m.Val[p]) / s)
		}
	}
	return out
}

// EASEBytes is the memory NewEASE needs for a catalogue of n items: two
// dense n×n float32 matrices.
func EASEBytes(n int) int64 { return 2 * 4 * int64(n) * int64(n) }

// ErrNotPositiveDefinite is returned when the regularised Gram matrix is not
// numerically positive definite (a lambda far too small for float32).
var ErrNotPositiveDefinite = errors.New("ease: Gram matrix not positive definite (raise lambda)")

// NewEASE builds EASE^R neighbour lists (Steck, "Embarrassingly Shallow
// Autoencoders for Sparse Data", WWW 2019): the item-item weights B that
// minimise ‖X − XB‖² + lambda‖B‖² with diag(B) = 0, in closed form
//
//	P = (XᵀX + lambda·I)⁻¹,  B_ij = −P_ij / P_jj  (i ≠ j),
//
// pruned to each item's neighbors largest weights. X is ui (its weights as
// given). The inverse is dense: EASEBytes(items) of memory and about
// (5/3)·items³ float32 operations (blocked Cholesky, triangular inverse and
// product through f32.Gemm on two goroutines), so callers bound the
// catalogue it is used for. It stops early with ctx's error.
func NewEASE(ctx context.Context, ui *CSR, neighbors int, lambda float64, fallback Recommender) (*ItemKNN, error) {
	if neighbors <= 0 {
		return nil, fmt.Errorf("ease: neighbors must be positive, got %d", neighbors)
	}
	if math.IsNaN(lambda) || lambda <= 0 || math.IsInf(lambda, 0) {
		return nil, fmt.Errorf("ease: lambda must be positive and finite, got %g", lambda)
	}
	n := ui.Cols
	if n == 0 {
		return newItemKNN(ui, &CSR{Rows: 0, Cols: 0, Ptr: []int64{0}}, fallback), nil
	}
	g := gram(ui)
	for i := range n {
		g[i*n+i] += float32(lambda)
	}
	if err := cholesky(ctx, g, n); err != nil {
		return nil, err
	}
	y := make([]float32, n*n)
	if err := lowerInverse(ctx, g, y, n); err != nil {
		return nil, err
	}
	// g (the factor) is no longer needed: it holds Yᵀ while P = Yᵀ·Y
	// overwrites Y.
	if err := gramOfLower(ctx, y, g, n); err != nil {
		return nil, err
	}
	p := y
	g = nil
	sim := &CSR{Rows: n, Cols: n, Ptr: make([]int64, n+1)}
	top := NewTopK(neighbors)
	var sorted []Scored
	for i := range n {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		top.ResetK(neighbors)
		row := p[i*n : (i+1)*n]
		for j, v := range row {
			if j != i {
				if w := -v / p[j*n+j]; w > 0 {
					top.Push(int32(j), w)
				}
			}
		}
		sorted = top.Sorted(sorted[:0])
		sortByItem(sorted)
		for _, s := range sorted {
			sim.Idx = append(sim.Idx, s.Item)
			sim.Val = append(sim.Val, s.Score)
		}
		sim.Ptr[i+1] = int64(len(sim.Idx))
	}
	return newItemKNN(ui, sim, fallback), nil
}

// gram is the dense items×items matrix XᵀX of ui, row i accumulated over
// the users of i (each row by one goroutine: deterministic).
func gram(ui *CSR) []float32 {
	n := ui.Cols
	iu := ui.Transpose()
	g := make([]float32, n*n)
	parallelRows(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := g[i*n : (i+1)*n]
			users, wu := iu.Row(int32(i))
			for p, u := range users {
				items, wi := ui.Row(u)
				w := wu[p]
				for q, j := range items {
					row[j] += w * wi[q]
				}
			}
		}
	})
	return g
}

// parallelRows runs f on two contiguous halves of [0, n) at once.
func parallelRows(n int, f func(lo, hi int)) {
	if n < 64 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	mid := n / 2
	wg.Add(1)
	go func() { defer wg.Done(); f(mid, n) }()
	f(0, mid)
	wg.Wait()
}

// panelPool holds the contiguous operand copies of the dense products.
var panelPool = sync.Pool{New: func() any { return new([]float32) }}

// easeBlock is the block size of the dense factorisations.
const easeBlock = 128

// cholesky overwrites the lower triangle of the symmetric positive definite
// row-major n×n matrix a with L, a = L·Lᵀ (right-looking, blocked: the
// diagonal blocks in float64, the panels and trailing updates by Gemm). The
// strict upper triangle is left as garbage.
func cholesky(ctx context.Context, a []float32, n int) error {
	inv := make([]float32, easeBlock*easeBlock)
	panel := make([]float32, n*easeBlock)
	for k0 := 0; k0 < n; k0 += easeBlock {
		if err := ctx.Err(); err != nil {
			return err
		}
		kb := min(easeBlock, n-k0)
		if err := cholDiag(a, n, k0, kb); err != nil {
			return err
		}
		m := n - k0 - kb
		if m == 0 {
			break
		}
		invLowerSmall(a, n, k0, kb, inv)
		// L21 = A21 · L11⁻ᵀ
		a21 := a[(k0+kb)*n+k0:]
		for r := range m {
			copy(panel[r*kb:(r+1)*kb], a21[r*n:r*n+kb])
		}
		parallelRows(m, func(lo, hi int) {
			f32.Gemm(false, true, hi-lo, kb, kb, 1, panel[lo*kb:], kb, inv, kb, 0, a21[lo*n:], n)
		})
		for r := range m {
			copy(panel[r*kb:(r+1)*kb], a21[r*n:r*n+kb])
		}
		// A22 −= L21·L21ᵀ, lower triangle only: row block [lo, hi) needs
		// the columns up to hi.
		a22 := a[(k0+kb)*n+k0+kb:]
		rowBlocks(m, func(lo, hi int) {
			f32.Gemm(false, true, hi-lo, hi, kb, -1, panel[lo*kb:], kb, panel, kb, 1, a22[lo*n:], n)
		})
	}
	return nil
}

// rowBlocks runs f over [0, m) in blocks of easeBlock rows, the blocks
// shared by two goroutines (blocks later in the range cost more, so they
// are dealt alternately).
func rowBlocks(m int, f func(lo, hi int)) {
	nb := (m + easeBlock - 1) / easeBlock
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := w; b < nb; b += 2 {
				f(b*easeBlock, min((b+1)*easeBlock, m))
			}
		}()
	}
	wg.Wait()
}

// cholDiag factors the kb×kb diagonal block at k0 in place (float64 sums).
func cholDiag(a []float32, n, k0, kb int) error {
	for j := k0; j < k0+kb; j++ {
		d := float64(a[j*n+j])
		for p := k0; p < j; p++ {
			d -= float64(a[j*n+p]) * float64(a[j*n+p])
		}
		if !(d > 0) || math.IsInf(d, 0) {
			return ErrNotPositiveDefinite
		}
		l := math.Sqrt(d)
		a[j*n+j] = float32(l)
		for i := j + 1; i < k0+kb; i++ {
			s := float64(a[i*n+j])
			for p := k0; p < j; p++ {
				s -= float64(a[i*n+p]) * float64(a[j*n+p])
			}
			a[i*n+j] = float32(s / l)
		}
	}
	return nil
}

// invLowerSmall writes the inverse of the kb×kb lower-triangular block of a
// at (k0, k0) into inv (row-major, stride kb, zero above the diagonal).
func invLowerSmall(a []float32, n, k0, kb int, inv []float32) {
	clear(inv[:kb*kb])
	for j := range kb {
		inv[j*kb+j] = float32(1 / float64(a[(k0+j)*n+k0+j]))
		for i := j + 1; i < kb; i++ {
			var s float64
			for p := j; p < i; p++ {
				s += float64(a[(k0+i)*n+k0+p]) * float64(inv[p*kb+j])
			}
			inv[i*kb+j] = float32(-s / float64(a[(k0+i)*n+k0+i]))
		}
	}
}

// lowerInverse writes Y = L⁻¹ (lower triangular, zeros above) for the
// lower triangle L of l, by block rows: Y_ii = L_ii⁻¹ and
// Y_i,<i = −L_ii⁻¹ · (L_i,<i · Y_<i,<i).
func lowerInverse(ctx context.Context, l, y []float32, n int) error {
	inv := make([]float32, easeBlock*easeBlock)
	t := make([]float32, easeBlock*n)
	for i0 := 0; i0 < n; i0 += easeBlock {
		if err := ctx.Err(); err != nil {
			return err
		}
		ib := min(easeBlock, n-i0)
		invLowerSmall(l, n, i0, ib, inv)
		for r := range ib {
			copy(y[(i0+r)*n+i0:(i0+r)*n+i0+ib], inv[r*ib:(r+1)*ib])
		}
		if i0 == 0 {
			continue
		}
		// T = L[i0:i0+ib, 0:i0] · Y[0:i0, 0:i0]; column block c of T only
		// needs the rows of Y from c on (Y is lower triangular).
		tt := t[:ib*i0]
		colBlocks(i0, func(c0, c1 int) {
			// copy the column block of Y into a contiguous panel first: read
			// in place, every row of it is on another page (TLB misses, not
			// arithmetic, would bound the product)
			w := c1 - c0
			bp := panelPool.Get().(*[]float32)
			buf := slices.Grow((*bp)[:0], (i0-c0)*w)[:(i0-c0)*w]
			for r := c0; r < i0; r++ {
				copy(buf[(r-c0)*w:(r-c0+1)*w], y[r*n+c0:r*n+c1])
			}
			f32.Gemm(false, false, ib, w, i0-c0, 1, l[i0*n+c0:], n, buf, w, 0, tt[c0:], i0)
			*bp = buf
			panelPool.Put(bp)
		})
		// Y[i0:i0+ib, 0:i0] = −inv · T
		f32.Gemm(false, false, ib, i0, ib, -1, inv, ib, tt, i0, 0, y[i0*n:], n)
	}
	return nil
}

// colBlocks runs f over [0, m) in column blocks of easeBlock, dealt to two
// goroutines.
func colBlocks(m int, f func(lo, hi int)) { rowBlocks(m, f) }

// gramOfLower overwrites lower-triangular Y with P = Yᵀ·Y (symmetric),
// using z (n×n) as scratch for Yᵀ: column block [b0, b1) of P's rows from b0
// on is Yᵀ[b0:, b0:] · Y[b0:, b0:b1] (the rows of Y above b0 are zero in
// those columns). Writing it over the same block of Y is safe: later blocks
// read only their own columns of Y, and Yᵀ is in z. The rows above b0 are
// mirrored from the blocks before.
func gramOfLower(ctx context.Context, y, z []float32, n int) error {
	transpose(z, y, n)
	var colBuf []float32
	for b0 := 0; b0 < n; b0 += easeBlock {
		if err := ctx.Err(); err != nil {
			return err
		}
		b1 := min(b0+easeBlock, n)
		rest := n - b0
		w := b1 - b0
		bcol := slices.Grow(colBuf[:0], rest*w)[:rest*w]
		colBuf = bcol
		for r := range rest {
			copy(bcol[r*w:(r+1)*w], y[(b0+r)*n+b0:(b0+r)*n+b1])
		}
		rowBlocks(rest, func(lo, hi int) {
			f32.Gemm(false, false, hi-lo, w, rest, 1, z[(b0+lo)*n+b0:], n, bcol, w, 0, y[(b0+lo)*n+b0:], n)
		})
	}
	mirrorLower(y, n)
	return nil
}

// transpose writes mᵀ of the n×n matrix m into dst, in cache-sized tiles.
func transpose(dst, m []float32, n int) {
	const tile = 64
	parallelRows((n+tile-1)/tile, func(lo, hi int) {
		for i0 := lo * tile; i0 < min(hi*tile, n); i0 += tile {
			for j0 := 0; j0 < n; j0 += tile {
				for i := i0; i < min(i0+tile, n); i++ {
					for j := j0; j < min(j0+tile, n); j++ {
						dst[j*n+i] = m[i*n+j]
					}
				}
			}
		}
	})
}

// mirrorLower copies the lower triangle of the n×n matrix p over its upper
// one, in 64×64 tiles (a column walk would miss the cache on every element).
func mirrorLower(p []float32, n int) {
	const tile = 64
	for i0 := 0; i0 < n; i0 += tile {
		for j0 := i0; j0 < n; j0 += tile {
			for i := i0; i < min(i0+tile, n); i++ {
				for j := max(j0, i+1); j < min(j0+tile, n); j++ {
					p[i*n+j] = p[j*n+i]
				}
			}
		}
	}
}
