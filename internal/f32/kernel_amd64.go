//go:build amd64 && !purego

package f32

import "golang.org/x/sys/cpu"

// HasAVX2FMA reports whether the assembly kernels run on this CPU.
var HasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// HasAVX512 reports whether the kernels use their AVX-512 forms (16 floats
// per register, two FMA chains per row).
var HasAVX512 = HasAVX2FMA && cpu.X86.HasAVX512F

// kern4x16sAVX512 is the 4×16 kernel with A's element (i, p) at
// a[i·rs + p·cs]: packed A is rs 1, cs 4.
//
//go:noescape
func kern4x16sAVX512(k int, a *float32, rs, cs int, b, c *float32, ldc int, accum bool)

//go:noescape
func kern8x32AVX512(k int, a *float32, rs, cs int, b0, b1 *float32, bs0, bs1 int, c *float32, ldc int, flags int)

// kern8x32 is the wide kernel (AVX-512 only; see kern8x32Go for what it
// computes).
func kern8x32(k int, a []float32, rs, cs int, b0, b1 []float32, bs0, bs1 int, c []float32, ldc int, accum, relu bool) {
	if k == 0 {
		kern8x32Go(k, a, rs, cs, b0, b1, bs0, bs1, c, ldc, accum, relu)
		return
	}
	_ = a[7*rs+(k-1)*cs]
	_ = b0[(k-1)*bs0+15]
	_ = b1[(k-1)*bs1+15]
	_ = c[7*ldc+31]
	flags := 0
	if accum {
		flags |= 1
	}
	if relu {
		flags |= 2
	}
	kern8x32AVX512(k, &a[0], rs, cs, &b0[0], &b1[0], bs0, bs1, &c[0], ldc, flags)
}

//go:noescape
func scoreTileAVX512(k, ng int, a, b, bias, thr, out *float32, masks *uint64)

// kern4x16asm: C[4][16] (row stride ldc) = A·B, or C += A·B when accum; A is
// packed k×4, B packed k×16.
//
//go:noescape
func kern4x16asm(k int, a, b, c *float32, ldc int, accum bool)

// scoreTileAsm: for each of ng item groups g (B packed k×16 per group, bias
// 16 per group): out[g][r][j] = A_r·B_g[:,j] + bias[g][j] and bit 16r+j of
// masks[g] set when that score ≥ thr[r].
//
//go:noescape
func scoreTileAsm(k, ng int, a, b, bias, thr, out *float32, masks *uint64)

func kern4x16(k int, a, b, c []float32, ldc int, accum bool) {
	if !HasAVX2FMA {
		kern4x16Go(k, a, b, c, ldc, accum)
		return
	}
	_ = a[4*k-1]
	_ = b[16*k-1]
	_ = c[3*ldc+15]
	if HasAVX512 {
		kern4x16sAVX512(k, &a[0], 1, MR, &b[0], &c[0], ldc, accum)
		return
	}
	kern4x16asm(k, &a[0], &b[0], &c[0], ldc, accum)
}

// kern4x16s is kern4x16 on a 4×k block of A read in place (element (i, p)
// at a[i·rs + p·cs]), where the CPU has a kernel for that; it reports
// whether it ran.
func kern4x16s(k int, a []float32, rs, cs int, b, c []float32, ldc int, accum bool) bool {
	if !HasAVX512 || k == 0 {
		return false
	}
	_ = a[3*rs+(k-1)*cs]
	_ = b[16*k-1]
	_ = c[3*ldc+15]
	kern4x16sAVX512(k, &a[0], rs, cs, &b[0], &c[0], ldc, accum)
	return true
}

func scoreTile(k, ng int, a, b, bias, thr, out []float32, masks []uint64) {
	if !HasAVX2FMA || k == 0 {
		scoreTileGo(k, ng, a, b, bias, thr, out, masks)
		return
	}
	_ = a[4*k-1]
	_ = b[16*k*ng-1]
	_ = bias[16*ng-1]
	_ = thr[3]
	_ = out[64*ng-1]
	_ = masks[ng-1]
	if HasAVX512 {
		scoreTileAVX512(k, ng, &a[0], &b[0], &bias[0], &thr[0], &out[0], &masks[0])
		return
	}
	scoreTileAsm(k, ng, &a[0], &b[0], &bias[0], &thr[0], &out[0], &masks[0])
}

//go:noescape
func reluAsm(x *float32, n int)

// Relu sets every negative element of x to zero (NaN and −0 stay as they
// are, as in the Go loop: VMAXPS returns its memory operand on NaN or a tie).
func Relu(x []float32) {
	n := len(x) &^ 7
	if HasAVX2FMA && n > 0 {
		reluAsm(&x[0], n)
	}
	reluGo(x[n:])
}

//go:noescape
func dotAVX512(a, b *float32, n int) float32

// Dot is the inner product of a and b[:len(a)]: 16 lanes at a time where the
// CPU has AVX-512, the rest in Go. Its sum order depends on len(a) only.
func Dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	if m := n &^ 15; HasAVX512 && m > 0 {
		return dotAVX512(&a[0], &b[0], m) + dotGo(a[m:], b[m:])
	}
	return dotGo(a, b)
}

//go:noescape
func axpyAVX512(alpha float32, x, y *float32, n int)

// Axpy sets y[i] = fma(alpha, x[i], y[i]) for i < len(x): 16 lanes at a
// time with AVX-512, the rest in Go.
func Axpy(alpha float32, x, y []float32) {
	n := len(x)
	y = y[:n]
	if m := n &^ 15; HasAVX512 && m > 0 {
		axpyAVX512(alpha, &x[0], &y[0], m)
		axpyGo(alpha, x[m:], y[m:])
		return
	}
	axpyGo(alpha, x, y)
}

//go:noescape
func gatherProdAVX512(dst, table *float32, items *int32, n, d int, u, dots *float32)

// GatherProd writes, for each r, row r of dst (2d floats) as [v, u⊙v] where
// v is row items[r] of table (d floats per row), and dots[r] = Σ u⊙v: the
// re-rank's layer-0 input and the tower's dot product in one pass.
func GatherProd(dst, table []float32, items []int32, d int, u, dots []float32) {
	n := len(items)
	if n == 0 {
		return
	}
	_ = dst[2*d*n-1]
	_ = dots[n-1]
	_ = u[d-1]
	if HasAVX512 && d%16 == 0 && d > 0 {
		rows := len(table) / d
		for _, it := range items {
			if uint(it) >= uint(rows) {
				panic("f32.GatherProd: row out of range")
			}
		}
		gatherProdAVX512(&dst[0], &table[0], &items[0], n, d, &u[0], &dots[0])
		return
	}
	gatherProdGo(dst, table, items, d, u, dots)
}

//go:noescape
func reluGradAsm(out, y, grad *float32, n int)

// ReluGrad sets out[i] to g[i] where y[i] > 0 and to 0 elsewhere (NaN and
// ±0 included): the gradient through a ReLU whose output is y. All three
// have the same length.
func ReluGrad(out, y, g []float32) {
	n := len(out) &^ 7
	if HasAVX2FMA && n > 0 {
		_, _ = y[n-1], g[n-1]
		reluGradAsm(&out[0], &y[0], &g[0], n)
	}
	reluGradGo(out[n:], y[n:], g[n:])
}

//go:noescape
func fmaLoop(n int)

//go:noescape
func fmaLoop512(n int)

// fmaBurst runs n iterations of the widest FMA loop the CPU has and returns
// their float32 FLOPs (0 without the assembly kernels).
func fmaBurst(n int, wide bool) float64 {
	switch {
	case wide && HasAVX512:
		fmaLoop512(n)
		return float64(n) * 12 * 16 * 2
	case HasAVX2FMA:
		fmaLoop(n)
		return float64(n) * 12 * 8 * 2
	}
	return 0
}

//go:noescape
func adamAsm(p, grad, m, v *float32, n int, c *[6]float32)

// Adam applies one Adam step to p with gradient g and moments m, v (equal
// lengths): c = step, b1, 1−b1, b2, 1−b2, eps. Bit for bit the Go loop.
func Adam(p, g, m, v []float32, c *[6]float32) {
	if n := len(g) &^ 15; HasAVX512 && n > 0 {
		_, _, _ = p[n-1], m[n-1], v[n-1]
		adamAVX512(&p[0], &g[0], &m[0], &v[0], n, c)
		p, g, m, v = p[n:], g[n:], m[n:], v[n:]
	}
	n := len(g) &^ 7
	if HasAVX2FMA && n > 0 {
		_, _, _ = p[n-1], m[n-1], v[n-1]
		adamAsm(&p[0], &g[0], &m[0], &v[0], n, c)
	}
	adamGo(p[n:], g[n:], m[n:], v[n:], c)
}

//go:noescape
func adamAVX512(p, grad, m, v *float32, n int, c *[6]float32)

//go:noescape
func addScaledAVX512(dst, x *float32, alpha float32, n int)

// AddScaled sets dst[i] += alpha·x[i] for i < len(x), as a product then a
// sum (the bits of the Go loop; alpha 1 is a plain sum).
func AddScaled(dst []float32, alpha float32, x []float32) {
	n := len(x)
	dst = dst[:n]
	if m := n &^ 15; HasAVX512 && m > 0 {
		addScaledAVX512(&dst[0], &x[0], alpha, m)
		dst, x = dst[m:], x[m:]
	}
	addScaledGo(dst, alpha, x)
}

//go:noescape
func mulAVX512(dst, a, b *float32, n int)

// Mul sets dst[i] = a[i]·b[i] for i < len(a).
func Mul(dst, a, b []float32) {
	n := len(a)
	dst, b = dst[:n], b[:n]
	if m := n &^ 15; HasAVX512 && m > 0 {
		mulAVX512(&dst[0], &a[0], &b[0], m)
		dst, a, b = dst[m:], a[m:], b[m:]
	}
	mulGo(dst, a, b)
}
