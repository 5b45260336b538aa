//go:build !amd64 || purego

package f32

// HasAVX2FMA reports whether the assembly kernels run on this CPU.
var HasAVX2FMA = false

// HasAVX512 reports whether the kernels use their AVX-512 forms.
var HasAVX512 = false

func kern4x16(k int, a, b, c []float32, ldc int, accum bool) { kern4x16Go(k, a, b, c, ldc, accum) }

func kern8x32(k int, a []float32, rs, cs int, b0, b1 []float32, bs0, bs1 int, c []float32, ldc int, accum, relu bool) {
	kern8x32Go(k, a, rs, cs, b0, b1, bs0, bs1, c, ldc, accum, relu)
}

func kern4x16s(int, []float32, int, int, []float32, []float32, int, bool) bool { return false }

func scoreTile(k, ng int, a, b, bias, thr, out []float32, masks []uint64) {
	scoreTileGo(k, ng, a, b, bias, thr, out, masks)
}

// Relu sets every negative element of x to zero.
func Relu(x []float32) { reluGo(x) }

// ReluGrad sets out[i] to g[i] where y[i] > 0 and to 0 elsewhere.
func ReluGrad(out, y, g []float32) { reluGradGo(out, y, g) }

// Dot is the inner product of a and b[:len(a)].
func Dot(a, b []float32) float32 { return dotGo(a, b[:len(a)]) }

// Axpy sets y[i] = fma(alpha, x[i], y[i]) for i < len(x).
func Axpy(alpha float32, x, y []float32) { axpyGo(alpha, x, y[:len(x)]) }

// GatherProd writes, for each r, row r of dst (2d floats) as [v, u⊙v] where
// v is row items[r] of table, and dots[r] = Σ u⊙v.
func GatherProd(dst, table []float32, items []int32, d int, u, dots []float32) {
	gatherProdGo(dst, table, items, d, u, dots)
}

// AddScaled sets dst[i] += alpha·x[i] for i < len(x), as a product then a sum.
func AddScaled(dst []float32, alpha float32, x []float32) { addScaledGo(dst[:len(x)], alpha, x) }

func fmaBurst(int, bool) float64 { return 0 }

// Adam applies one Adam step to p with gradient g and moments m, v (equal
// lengths): c = step, b1, 1−b1, b2, 1−b2, eps.
func Adam(p, g, m, v []float32, c *[6]float32) { adamGo(p, g, m, v, c) }

// Mul sets dst[i] = a[i]·b[i] for i < len(a).
func Mul(dst, a, b []float32) { mulGo(dst[:len(a)], a, b[:len(a)]) }
