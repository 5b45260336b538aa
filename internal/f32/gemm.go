package f32

import (
	"math"
	"sync"
)

// Micro-kernel shape: MR rows of A by NR columns of B.
const (
	MR = 4
	NR = 16
)

// kern4x16Go is the micro-kernel in Go: C[4][16] = A·B (or += when accum),
// A packed k×4, B packed k×16, C rows ldc apart.
func kern4x16Go(k int, a, b, c []float32, ldc int, accum bool) {
	var acc [MR][NR]float32
	a, b = a[:MR*k], b[:NR*k]
	for p := range k {
		bp := b[p*NR : p*NR+NR : p*NR+NR]
		for r := range MR {
			x := a[p*MR+r]
			row := &acc[r]
			for j := range NR {
				row[j] += x * bp[j]
			}
		}
	}
	for r := range MR {
		cr := c[r*ldc : r*ldc+NR]
		if accum {
			for j := range NR {
				cr[j] += acc[r][j]
			}
		} else {
			copy(cr, acc[r][:])
		}
	}
}

// kern8x32Go is the wide kernel in Go: C[8][32] (rows ldc apart) = A·[B0 B1]
// (or += when accum), A's element (i, p) at a[i·rs + p·cs], B0 and B1 the
// 16 columns each with rows bs0 and bs1 apart (16: packed); each element one
// FMA chain over p, as the assembly.
func kern8x32Go(k int, a []float32, rs, cs int, b0, b1 []float32, bs0, bs1 int, c []float32, ldc int, accum, relu bool) {
	for i := range 8 {
		for j := range 32 {
			b, jj, bs := b0, j, bs0
			if j >= 16 {
				b, jj, bs = b1, j-16, bs1
			}
			var acc float32
			for p := range k {
				acc = float32(math.FMA(float64(a[i*rs+p*cs]), float64(b[p*bs+jj]), float64(acc)))
			}
			if accum {
				acc += c[i*ldc+j]
			}
			if relu && acc < 0 {
				acc = 0
			}
			c[i*ldc+j] = acc
		}
	}
}

func scoreTileGo(k, ng int, a, b, bias, thr, out []float32, masks []uint64) {
	for g := range ng {
		o := out[g*MR*NR : (g+1)*MR*NR]
		kern4x16Go(k, a, b[g*NR*k:], o, NR, false)
		var m uint64
		for r := range MR {
			for j := range NR {
				s := o[r*NR+j] + bias[g*NR+j]
				o[r*NR+j] = s
				if s >= thr[r] {
					m |= 1 << (NR*r + j)
				}
			}
		}
		masks[g] = m
	}
}

// PackB packs the k×n matrix op(B) (B row-major with leading dimension ldb,
// transposed when trans) into ⌈n/16⌉ panels of k×16, zero-padded: the layout
// the kernels stream. dst is reused when large enough.
func PackB(dst []float32, trans bool, k, n int, b []float32, ldb int) []float32 {
	np := (n + NR - 1) / NR
	dst = grow(dst, np*k*NR)
	for jp := range np {
		panel := dst[jp*k*NR : (jp+1)*k*NR]
		j0 := jp * NR
		w := min(NR, n-j0)
		for p := range k {
			row := panel[p*NR : p*NR+NR]
			if trans {
				for j := range w {
					row[j] = b[(j0+j)*ldb+p]
				}
			} else {
				copy(row[:w], b[p*ldb+j0:p*ldb+j0+w])
			}
			clear(row[w:])
		}
	}
	return dst
}

// packA packs rows i0..i0+3 of the m×k matrix alpha·op(A) into k×4,
// zero-padding rows past m.
func packA(dst []float32, trans bool, i0, m, k int, a []float32, lda int, alpha float32) {
	dst = dst[:MR*k]
	switch h := min(MR, m-i0); {
	case h == MR && !trans:
		r0 := a[i0*lda : i0*lda+k]
		r1 := a[(i0+1)*lda : (i0+1)*lda+k]
		r2 := a[(i0+2)*lda : (i0+2)*lda+k]
		r3 := a[(i0+3)*lda : (i0+3)*lda+k]
		for p := range k {
			c := dst[p*MR : p*MR+MR : p*MR+MR]
			c[0], c[1], c[2], c[3] = r0[p], r1[p], r2[p], r3[p]
		}
	case h == MR && trans:
		for p := range k {
			copy(dst[p*MR:p*MR+MR], a[p*lda+i0:p*lda+i0+MR])
		}
	default:
		for p := range k {
			col := dst[p*MR : p*MR+MR]
			for r := range h {
				if trans {
					col[r] = a[p*lda+i0+r]
				} else {
					col[r] = a[(i0+r)*lda+p]
				}
			}
			clear(col[h:])
		}
	}
	if alpha != 1 {
		for i := range dst {
			dst[i] *= alpha
		}
	}
}

var scratchPool = sync.Pool{New: func() any { return new(gemmScratch) }}

type gemmScratch struct {
	a, b, zero []float32
	tile       [MR * NR]float32
	wide       [8 * 2 * NR]float32
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices (m×k
// times k×n into m×n), with op transposing when tA / tB.
func Gemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, false)
}

// GemmReLU is Gemm followed by C = max(C, 0) (f32.Relu), fused into the
// kernel's stores where it can be: a layer's product, bias and activation
// in one pass over C.
func GemmReLU(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, true)
}

func gemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, relu bool) {
	if m == 0 || n == 0 {
		return
	}
	if beta != 0 && beta != 1 {
		for i := range m {
			for j := range n {
				c[i*ldc+j] *= beta
			}
		}
	}
	accum := beta != 0
	if k == 0 || alpha == 0 {
		emptyProduct(m, n, accum, c, ldc)
		reluRows(relu, m, n, c, ldc)
		return
	}
	s := scratchPool.Get().(*gemmScratch)
	defer scratchPool.Put(s)
	if n == 1 && HasAVX512 {
		gemv(s, tA, m, k, alpha, a, lda, b, ldb, tB, accum, c, ldc)
		reluRows(relu, m, n, c, ldc)
		return
	}
	if HasAVX512 && n > NR && n%NR == 0 && !tB {
		// the wide kernel reads a row-major B in place, 16 columns at a time
		gemmWide(s, tA, m, n, k, alpha, a, lda, b, ldb, accum, relu, c, ldc)
		return
	}
	s.b = PackB(s.b, tB, k, n, b, ldb)
	gemmPacked(s, tA, m, n, k, alpha, a, lda, s.b, accum, relu, c, ldc)
}

// reluRows applies Relu to the m×n block of C when relu is set.
func reluRows(relu bool, m, n int, c []float32, ldc int) {
	if relu {
		for i := range m {
			Relu(c[i*ldc : i*ldc+n])
		}
	}
}

// gemv is Gemm for a single column (n = 1, as a network's output layer):
// a panel would be 15/16 padding. Rows of A are dotted with the column;
// a transposed A is summed row by row into the result (one FMA chain per
// element over p, as the kernels). Either way an element's bits do not
// depend on m.
func gemv(s *gemmScratch, tA bool, m, k int, alpha float32, a []float32, lda int, b []float32, ldb int, tB bool, accum bool, c []float32, ldc int) {
	s.b = grow(s.b, k)
	col := s.b
	for p := range k {
		if tB {
			col[p] = b[p] // op(B) = Bᵀ, B is 1×k
		} else {
			col[p] = b[p*ldb]
		}
	}
	s.a = grow(s.a, m)
	acc := s.a
	if tA {
		clear(acc)
		for p := range k {
			Axpy(col[p], a[p*lda:p*lda+m], acc)
		}
	} else {
		for i := range m {
			acc[i] = Dot(a[i*lda:i*lda+k], col)
		}
	}
	for i := range m {
		v := alpha * acc[i]
		if accum {
			v += c[i*ldc]
		}
		c[i*ldc] = v
	}
}

// GemmPackedB is Gemm without transposes, alpha 1 and beta 0 (accum false)
// or 1 (accum true), with B already packed by PackB: for a B used many
// times, like a layer's weights. relu applies Relu to C afterwards, fused
// where it can be (see GemmReLU).
func GemmPackedB(m, n, k int, a []float32, lda int, bp []float32, accum, relu bool, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		emptyProduct(m, n, accum, c, ldc)
		reluRows(relu, m, n, c, ldc)
		return
	}
	s := scratchPool.Get().(*gemmScratch)
	defer scratchPool.Put(s)
	gemmPacked(s, false, m, n, k, 1, a, lda, bp, accum, relu, c, ldc)
}

// emptyProduct is C = 0·…: C unchanged when accumulating, else zeroed.
func emptyProduct(m, n int, accum bool, c []float32, ldc int) {
	if !accum {
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	}
}

func gemmPacked(s *gemmScratch, tA bool, m, n, k int, alpha float32, a []float32, lda int, bp []float32, accum, relu bool, c []float32, ldc int) {
	if HasAVX512 && n > NR {
		gemmWide(s, tA, m, n, k, alpha, a, lda, bp, 0, accum, relu, c, ldc)
		return
	}
	defer reluRows(relu, m, n, c, ldc)
	s.a = grow(s.a, MR*k)
	np := (n + NR - 1) / NR
	// A full block of 4 rows is read in place where a kernel can (packing
	// cost as much as a quarter of the products at training sizes); edge
	// rows and alpha ≠ 1 are packed.
	rs, cs := lda, 1
	if tA {
		rs, cs = 1, lda
	}
	for i0 := 0; i0 < m; i0 += MR {
		h := min(MR, m-i0)
		ablk, inPlace := []float32(nil), h == MR && alpha == 1 && HasAVX512
		if inPlace {
			ablk = a[i0*rs:]
		} else {
			packA(s.a, tA, i0, m, k, a, lda, alpha)
		}
		kern := func(panel, c []float32, ldc int, accum bool) {
			if !inPlace || !kern4x16s(k, ablk, rs, cs, panel, c, ldc, accum) {
				if inPlace { // k == 0 is handled by the callers; be safe
					packA(s.a, tA, i0, m, k, a, lda, alpha)
					inPlace = false
				}
				kern4x16(k, s.a, panel, c, ldc, accum)
			}
		}
		for jp := range np {
			j0 := jp * NR
			w := min(NR, n-j0)
			panel := bp[jp*k*NR : (jp+1)*k*NR]
			if h == MR && w == NR && len(c) >= (i0+MR-1)*ldc+j0+NR {
				kern(panel, c[i0*ldc+j0:], ldc, accum)
				continue
			}
			// Edge tile: the same kernel into a scratch tile, then the valid
			// part (one add per element, as the kernel's accumulate does).
			kern(panel, s.tile[:], NR, false)
			addTile(c[i0*ldc+j0:], ldc, s.tile[:], NR, h, w, accum)
		}
	}
}

// gemmWide runs products wider than one panel on the 8×32 kernel. B is
// packed by PackB (ldb 0) or, when n is a multiple of 16, row-major with
// leading dimension ldb, read in place. Every tile goes through the kernel,
// edge tiles too (into a scratch tile from zero-padded rows and a zero
// panel), so each element of C gets the same operations whatever its
// position: a row's result does not depend on its block.
func gemmWide(s *gemmScratch, tA bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, accum, relu bool, c []float32, ldc int) {
	const wr, wc = 8, 2 * NR
	np := (n + NR - 1) / NR
	if np%2 == 1 {
		s.zero = grow(s.zero, k*NR)
		clear(s.zero)
	}
	// panel jp: its first element and row stride
	panel := func(jp int) ([]float32, int) {
		if ldb == 0 {
			return b[jp*k*NR : (jp+1)*k*NR], NR
		}
		return b[jp*NR:], ldb
	}
	rs, cs := lda, 1
	if tA {
		rs, cs = 1, lda
	}
	for i0 := 0; i0 < m; i0 += wr {
		h := min(wr, m-i0)
		ab, ars, acs := []float32(nil), rs, cs
		if h == wr && alpha == 1 {
			ab = a[i0*rs:]
		} else {
			s.a = grow(s.a, wr*k)
			packRows(s.a, wr, tA, i0, m, k, a, lda, alpha)
			ab, ars, acs = s.a, 1, wr
		}
		for jp := 0; jp < np; jp += 2 {
			b0, bs0 := panel(jp)
			b1, bs1 := s.zero, NR
			if jp+1 < np {
				b1, bs1 = panel(jp + 1)
			}
			j0 := jp * NR
			w := min(wc, n-j0)
			if h == wr && w == wc && len(c) >= (i0+wr-1)*ldc+j0+wc {
				kern8x32(k, ab, ars, acs, b0, b1, bs0, bs1, c[i0*ldc+j0:], ldc, accum, relu)
				continue
			}
			kern8x32(k, ab, ars, acs, b0, b1, bs0, bs1, s.wide[:], wc, false, false)
			addTile(c[i0*ldc+j0:], ldc, s.wide[:], wc, h, w, accum)
			reluRows(relu, h, w, c[i0*ldc+j0:], ldc)
		}
	}
}

// addTile copies (or adds, one add per element as the kernels' accumulate
// does) the h×w top-left part of a tile into C.
func addTile(c []float32, ldc int, tile []float32, ldt, h, w int, accum bool) {
	for r := range h {
		cr := c[r*ldc : r*ldc+w]
		tr := tile[r*ldt : r*ldt+w]
		if accum {
			for j := range w {
				cr[j] += tr[j]
			}
		} else {
			copy(cr, tr)
		}
	}
}

// packRows packs rows i0… of the m×k matrix alpha·op(A) into k×rows,
// zero-padding rows past m.
func packRows(dst []float32, rows int, trans bool, i0, m, k int, a []float32, lda int, alpha float32) {
	dst = dst[:rows*k]
	h := min(rows, m-i0)
	for p := range k {
		col := dst[p*rows : (p+1)*rows]
		for r := range h {
			if trans {
				col[r] = alpha * a[p*lda+i0+r]
			} else {
				col[r] = alpha * a[(i0+r)*lda+p]
			}
		}
		clear(col[h:])
	}
}

// Retrieval scores users against packed items in tiles; see ScoreTile.
//
// PackUsers packs up to 4 user vectors of length k (rows of u with stride k,
// given by index) into k×4 for ScoreTile; missing users are zero rows.
func PackUsers(dst []float32, k int, rows ...[]float32) []float32 {
	dst = grow(dst, MR*k)
	for p := range k {
		for r := range MR {
			var v float32
			if r < len(rows) {
				v = rows[r][p]
			}
			dst[p*MR+r] = v
		}
	}
	return dst
}

// PackItems packs n item vectors (rows of v, k floats each) into 16-item
// groups (k×16, the last zero-padded) and their biases into 16 per group,
// NaN in the padding so that no padding score ever passes a threshold.
func PackItems(v []float32, bias []float32, n, k int) (packed, paddedBias []float32) {
	packed = PackB(nil, true, k, n, v, k)
	ng := (n + NR - 1) / NR
	paddedBias = make([]float32, ng*NR)
	copy(paddedBias, bias[:n])
	for j := n; j < len(paddedBias); j++ {
		paddedBias[j] = float32(math.NaN())
	}
	return packed, paddedBias
}

// ScoreTile scores 4 packed users (a: k×4) against ng packed item groups
// (b: ng panels of k×16, bias: 16 per group): out[g·64 + 16r + j] is user
// r's score of item j of group g, and bit 16r+j of masks[g] is set when
// that score ≥ thr[r] (never for NaN). out needs 64·ng floats, masks ng.
func ScoreTile(k, ng int, a, b, bias []float32, thr *[4]float32, out []float32, masks []uint64) {
	if ng == 0 {
		return
	}
	scoreTile(k, ng, a, b, bias, thr[:], out, masks)
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func reluGo(x []float32) {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
}

func gatherProdGo(dst, table []float32, items []int32, d int, u, dots []float32) {
	for r, it := range items {
		v := table[int(it)*d : int(it+1)*d]
		row := dst[r*2*d : (r+1)*2*d]
		copy(row[:d], v)
		var s float32
		for k := range d {
			p := u[k] * v[k]
			row[d+k] = p
			s += p
		}
		dots[r] = s
	}
}

func addScaledGo(dst []float32, alpha float32, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] += alpha * v
	}
}

func mulGo(dst, a, b []float32) {
	for i, v := range a {
		dst[i] = v * b[i]
	}
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = float32(math.FMA(float64(alpha), float64(v), float64(y[i])))
	}
}

// dotGo: four running sums, as model.Dot had.
func dotGo(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	b = b[:len(a)]
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func reluGradGo(out, y, g []float32) {
	for i, v := range y[:len(out)] {
		if v > 0 {
			out[i] = g[i]
		} else {
			out[i] = 0
		}
	}
}

func adamGo(p, g, m, v []float32, c *[6]float32) {
	step, b1, c1, b2, c2, eps := c[0], c[1], c[2], c[3], c[4], c[5]
	p, m, v = p[:len(g)], m[:len(g)], v[:len(g)]
	for k, gk := range g {
		mk := b1*m[k] + c1*gk
		vk := b2*v[k] + c2*gk*gk
		m[k], v[k] = mk, vk
		p[k] -= step * mk / (float32(math.Sqrt(float64(vk))) + eps)
	}
}
