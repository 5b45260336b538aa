package f32

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// naiveGemm is the float64 reference of Gemm.
func naiveGemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				av, bv := a[i*lda+p], b[p*ldb+j]
				if tA {
					av = a[p*lda+i]
				}
				if tB {
					bv = b[j*ldb+p]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

func TestGemmMatchesReference(t *testing.T) { variants(t, testGemmMatchesReference) }

func testGemmMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 1, 1}, {4, 16, 8}, {5, 17, 3}, {33, 70, 96}, {3, 40, 0}, {64, 64, 1024}, {130, 7, 13}, {512, 1, 64}, {64, 1, 512}, {2, 64, 9}, {9, 48, 5}, {17, 32, 40}} {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}} {
					m, n, k := sz[0], sz[1], sz[2]
					name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%v/beta=%v", m, n, k, tA, tB, ab[0], ab[1])
					t.Run(name, func(t *testing.T) {
						lda, ldb, ldc := k+1, n+2, n+3
						if tA {
							lda = m + 1
						}
						if tB {
							ldb = k + 2
						}
						a := randSlice(rng, max(m, k)*lda+1)
						b := randSlice(rng, max(n, k)*ldb+1)
						c := randSlice(rng, m*ldc)
						want := naiveGemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						pad := c[len(c)-1]
						Gemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], c, ldc)
						for i := range m {
							for j := range n {
								got, w := float64(c[i*ldc+j]), want[i*n+j]
								if math.Abs(got-w) > 1e-4*(1+math.Sqrt(float64(k)))*(1+math.Abs(w)) {
									t.Fatalf("C[%d][%d] = %v, want %v", i, j, got, w)
								}
							}
							for j := n; j < ldc && i*ldc+j < len(c)-1; j++ {
								_ = j // padding columns are checked below via the last element
							}
						}
						if n < ldc && c[len(c)-1] != pad {
							t.Fatal("wrote past column n")
						}
					})
				}
			}
		}
	}
}

// A row's result is the same whether it is computed alone or in a block, at
// any position: what makes scoring independent of block and shard sizes.
func TestGemmRowIndependentOfBlock(t *testing.T) { variants(t, testGemmRowIndependentOfBlock) }

func testGemmRowIndependentOfBlock(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 23, 37, 50
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	all := make([]float32, m*n)
	Gemm(false, false, m, n, k, 1, a, k, b, n, 0, all, n)
	for i := range m {
		row := make([]float32, n)
		Gemm(false, false, 1, n, k, 1, a[i*k:], k, b, n, 0, row, n)
		for j := range n {
			if row[j] != all[i*n+j] {
				t.Fatalf("row %d col %d: alone %v, in block %v", i, j, row[j], all[i*n+j])
			}
		}
	}
}

func TestKernelAsmMatchesGo(t *testing.T) { variants(t, testKernelAsmMatchesGo) }

func testKernelAsmMatchesGo(t *testing.T) {
	if !HasAVX2FMA {
		t.Skip("no AVX2+FMA: only the Go kernel runs here")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, k := range []int{1, 2, 7, 32, 96} {
		a, b := randSlice(rng, 4*k), randSlice(rng, 16*k)
		for _, accum := range []bool{false, true} {
			init := randSlice(rng, 4*20)
			got, want := append([]float32(nil), init...), append([]float32(nil), init...)
			kern4x16(k, a, b, got, 20, accum)
			kern4x16Go(k, a, b, want, 20, accum)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(k)*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("k=%d accum=%v [%d]: asm %v, go %v", k, accum, i, got[i], want[i])
				}
				if i%20 >= 16 && got[i] != init[i] {
					t.Fatalf("k=%d: wrote outside the tile at %d", k, i)
				}
			}
		}
	}
}

func TestScoreTile(t *testing.T) { variants(t, testScoreTile) }

func testScoreTile(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ n, k int }{{16, 32}, {37, 5}, {200, 64}, {3, 1}} {
		t.Run(fmt.Sprintf("n=%d/k=%d", tc.n, tc.k), func(t *testing.T) {
			n, k := tc.n, tc.k
			v, bias := randSlice(rng, n*k), randSlice(rng, n)
			users := [][]float32{randSlice(rng, k), randSlice(rng, k), randSlice(rng, k)} // 3 of 4 rows
			pv, pb := PackItems(v, bias, n, k)
			pu := PackUsers(nil, k, users...)
			ng := (n + NR - 1) / NR
			out, masks := make([]float32, 64*ng), make([]uint64, ng)
			thr := [4]float32{float32(math.Inf(-1)), 0, 1.5, float32(math.Inf(-1))}
			ScoreTile(k, ng, pu, pv, pb, &thr, out, masks)
			for g := range ng {
				for r := range 4 {
					for j := range 16 {
						i := g*16 + j
						s := out[g*64+r*16+j]
						bit := masks[g]>>(16*r+j)&1 == 1
						if i >= n {
							if bit {
								t.Fatalf("padding item %d flagged for row %d", i, r)
							}
							continue
						}
						var want float64
						if r < len(users) {
							for p := range k {
								want += float64(users[r][p]) * float64(v[i*k+p])
							}
						}
						want += float64(bias[i])
						if math.Abs(float64(s)-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("user %d item %d: %v, want %v", r, i, s, want)
						}
						if bit != (s >= thr[r]) {
							t.Fatalf("user %d item %d: score %v, threshold %v, flagged %v", r, i, s, thr[r], bit)
						}
					}
				}
			}
		})
	}
}

func TestBLASSgemmMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	m, n, k := 64, 96, 48
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	got, want := make([]float32, m*n), make([]float32, m*n)
	BLAS{}.Sgemm(blas.Trans, blas.NoTrans, m, n, k, 1, a, m, b, n, 0, got, n)
	gonum.Implementation{}.Sgemm(blas.Trans, blas.NoTrans, m, n, k, 1, a, m, b, n, 0, want, n)
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("[%d]: %v, gonum %v", i, got[i], want[i])
		}
	}
}

// BenchmarkGemm: one training-sized product (batch 1024, 96 → 64).
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sz := range [][3]int{{1024, 64, 96}, {1024, 64, 64}, {96, 64, 1024}} {
		m, n, k := sz[0], sz[1], sz[2]
		b.Run(fmt.Sprintf("%dx%dx%d", m, n, k), func(b *testing.B) {
			x, y, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			for b.Loop() {
				Gemm(false, false, m, n, k, 1, x, k, y, n, 0, c, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("gonum/%dx%dx%d", m, n, k), func(b *testing.B) {
			x, y, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			for b.Loop() {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, x, k, y, n, 0, c, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGemmTraining runs the products of one training step's graph
// (per worker: 256 rows, a 96 → 64 → 64 → 1 head), transposes included.
func BenchmarkGemmTraining(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sz := range []struct {
		m, n, k int
		tA, tB  bool
	}{{256, 64, 32, false, false}, {256, 64, 64, false, false}, {256, 32, 64, false, true}, {64, 64, 256, true, false},
		{256, 1, 64, false, false}, {256, 64, 1, false, true}, {64, 1, 256, true, false}} {
		m, n, k := sz.m, sz.n, sz.k
		b.Run(fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v", m, n, k, sz.tA, sz.tB), func(b *testing.B) {
			x, y, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
			lda, ldb := k, n
			if sz.tA {
				lda = m
			}
			if sz.tB {
				ldb = k
			}
			for b.Loop() {
				Gemm(sz.tA, sz.tB, m, n, k, 1, x, lda, y, ldb, 0, c, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// GemmReLU gives Gemm's bits followed by Relu's, on every path (fused into
// the wide kernel's stores, or after an edge tile, a narrow product or a
// single column).
func TestGemmReLUMatchesGemmThenRelu(t *testing.T) { variants(t, testGemmReLU) }

func testGemmReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, sz := range [][3]int{{200, 64, 64}, {13, 64, 30}, {9, 48, 5}, {7, 16, 9}, {33, 1, 20}, {5, 70, 11}} {
		for _, beta := range []float32{0, 1} {
			m, n, k := sz[0], sz[1], sz[2]
			a, b, c := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
			want, got := slices.Clone(c), slices.Clone(c)
			Gemm(false, false, m, n, k, 1, a, k, b, n, beta, want, n)
			Relu(want)
			GemmReLU(false, false, m, n, k, 1, a, k, b, n, beta, got, n)
			if !slices.Equal(got, want) {
				t.Fatalf("%v beta=%v: fused ReLU differs", sz, beta)
			}
			got2 := slices.Clone(c)
			bp := PackB(nil, false, k, n, b, n)
			if beta == 0 {
				clear(got2)
			}
			want2 := slices.Clone(got2)
			GemmPackedB(m, n, k, a, k, bp, beta != 0, false, want2, n)
			Relu(want2)
			GemmPackedB(m, n, k, a, k, bp, beta != 0, true, got2, n)
			if !slices.Equal(got2, want2) {
				t.Fatalf("%v beta=%v: packed fused ReLU differs", sz, beta)
			}
		}
	}
}

// The in-place kernel reads a row-major or a transposed block and gives the
// packed kernel's bits.
func TestKernelInPlaceMatchesPacked(t *testing.T) {
	if !HasAVX512 {
		t.Skip("no in-place kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, k := range []int{1, 2, 7, 32, 96} {
		for _, tA := range []bool{false, true} {
			lda := k + 3
			if tA {
				lda = 4 + 5
			}
			a := randSlice(rng, max(4, k)*lda)
			packed := make([]float32, 4*k)
			packA(packed, tA, 0, 4, k, a, lda, 1)
			rs, cs := lda, 1
			if tA {
				rs, cs = 1, lda
			}
			b := randSlice(rng, 16*k)
			for _, accum := range []bool{false, true} {
				init := randSlice(rng, 4*20)
				got, want := slices.Clone(init), slices.Clone(init)
				if !kern4x16s(k, a, rs, cs, b, got, 20, accum) {
					t.Fatal("in-place kernel did not run")
				}
				kern4x16(k, packed, b, want, 20, accum)
				if !slices.Equal(got, want) {
					t.Fatalf("k=%d tA=%v accum=%v: in place %v, packed %v", k, tA, accum, got, want)
				}
			}
		}
	}
}

func TestDot(t *testing.T) { variants(t, testDot) }

func testDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 48, 64, 100, 1000} {
		a, b := randSlice(rng, n), randSlice(rng, n+5)
		var want float64
		for i := range n {
			want += float64(a[i]) * float64(b[i])
		}
		got := Dot(a, b)
		if math.Abs(float64(got)-want) > 1e-5*float64(n+1) {
			t.Fatalf("n=%d: %v, want %v", n, got, want)
		}
		if again := Dot(slices.Clone(a), b[:n]); again != got {
			t.Fatalf("n=%d: %v, then %v", n, got, again)
		}
	}
}

// The 8×32 kernel: against its Go form, and the same bits from a block read
// in place (row-major or transposed) as from the block packed.
func TestWideKernel(t *testing.T) {
	if !HasAVX512 {
		t.Skip("no 8×32 kernel on this CPU")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, k := range []int{1, 2, 7, 64, 200} {
		for _, tA := range []bool{false, true} {
			lda := k + 3
			if tA {
				lda = 8 + 5
			}
			a := randSlice(rng, max(8, k)*lda)
			rs, cs := lda, 1
			if tA {
				rs, cs = 1, lda
			}
			packed := make([]float32, 8*k)
			packRows(packed, 8, tA, 0, 8, k, a, lda, 1)
			b0, b1 := randSlice(rng, 16*k), randSlice(rng, 16*k)
			for _, accum := range []bool{false, true} {
				init := randSlice(rng, 8*40)
				got, fromPacked, want := slices.Clone(init), slices.Clone(init), slices.Clone(init)
				kern8x32(k, a, rs, cs, b0, b1, 16, 16, got, 40, accum, false)
				kern8x32(k, packed, 1, 8, b0, b1, 16, 16, fromPacked, 40, accum, false)
				kern8x32Go(k, a, rs, cs, b0, b1, 16, 16, want, 40, accum, false)
				if !slices.Equal(got, fromPacked) {
					t.Fatalf("k=%d tA=%v accum=%v: in place and packed differ", k, tA, accum)
				}
				// B read in place from a row-major k×40 matrix
				bm := randSlice(rng, k*40)
				for p := range k {
					copy(b0[p*16:(p+1)*16], bm[p*40:])
					copy(b1[p*16:(p+1)*16], bm[p*40+16:])
				}
				inB, packedB := slices.Clone(init), slices.Clone(init)
				kern8x32(k, a, rs, cs, bm, bm[16:], 40, 40, inB, 40, accum, false)
				kern8x32(k, a, rs, cs, b0, b1, 16, 16, packedB, 40, accum, false)
				if !slices.Equal(inB, packedB) {
					t.Fatalf("k=%d tA=%v accum=%v: B in place and packed differ", k, tA, accum)
				}
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(k)*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("k=%d tA=%v accum=%v [%d]: asm %v, go %v", k, tA, accum, i, got[i], want[i])
					}
					if i%40 >= 32 && got[i] != init[i] {
						t.Fatalf("k=%d: wrote outside the tile at %d", k, i)
					}
				}
			}
		}
	}
}

func TestAxpy(t *testing.T) { variants(t, testAxpy) }

func testAxpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const alpha = float32(0.7)
	for _, n := range []int{0, 1, 15, 16, 17, 33, 64, 100} {
		x, y := randSlice(rng, n), randSlice(rng, n+3)
		want := slices.Clone(y)
		for i := range n {
			want[i] = float32(math.FMA(float64(alpha), float64(x[i]), float64(want[i])))
		}
		Axpy(alpha, x, y)
		for i := range y {
			// the Go form rounds twice (float64 FMA, then float32): at most
			// an ulp from the single rounding of the hardware's FMA
			if d := math.Abs(float64(y[i] - want[i])); d > 1e-6*(1+math.Abs(float64(want[i]))) || (i >= n && y[i] != want[i]) {
				t.Fatalf("n=%d [%d]: %v, want %v", n, i, y[i], want[i])
			}
		}
	}
}

func TestGatherProd(t *testing.T) { variants(t, testGatherProd) }

func testGatherProd(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, d := range []int{16, 32, 48, 64, 8, 20} {
		const rows = 50
		table, u := randSlice(rng, rows*d), randSlice(rng, d)
		items := []int32{7, 0, 49, 7, 13}
		dst, dots := make([]float32, 2*d*len(items)), make([]float32, len(items))
		GatherProd(dst, table, items, d, u, dots)
		for r, it := range items {
			var want float64
			for k := range d {
				v := table[int(it)*d+k]
				if dst[r*2*d+k] != v || dst[r*2*d+d+k] != u[k]*v {
					t.Fatalf("d=%d row %d col %d: %v, %v; want %v, %v", d, r, k, dst[r*2*d+k], dst[r*2*d+d+k], v, u[k]*v)
				}
				want += float64(u[k] * v)
			}
			if math.Abs(float64(dots[r])-want) > 1e-5*float64(d) {
				t.Fatalf("d=%d row %d: dot %v, want %v", d, r, dots[r], want)
			}
		}
	}
}

func TestAddScaled(t *testing.T) { variants(t, testAddScaled) }

func TestMul(t *testing.T) { variants(t, testMul) }

func testMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 16, 33, 100} {
		a, b, dst := randSlice(rng, n), randSlice(rng, n), randSlice(rng, n+2)
		want := slices.Clone(dst)
		for i := range n {
			want[i] = a[i] * b[i]
		}
		Mul(dst, a, b)
		if !slices.Equal(dst, want) {
			t.Fatalf("n=%d: %v, want %v", n, dst, want)
		}
	}
}

func testAddScaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 20))
	for _, n := range []int{0, 1, 16, 31, 32, 33, 100} {
		for _, alpha := range []float32{1, 0.37} {
			x, dst := randSlice(rng, n), randSlice(rng, n+2)
			want := slices.Clone(dst)
			addScaledGo(want[:n], alpha, x)
			AddScaled(dst, alpha, x)
			if !slices.Equal(dst, want) {
				t.Fatalf("n=%d alpha=%v: %v, want %v", n, alpha, dst, want)
			}
		}
	}
}

// BenchmarkScoreTile: 4 users against 100k items at dim 32.
func BenchmarkScoreTile(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	n, k := 100000, 32
	pv, pb := PackItems(randSlice(rng, n*k), randSlice(rng, n), n, k)
	pu := PackUsers(nil, k, randSlice(rng, k), randSlice(rng, k), randSlice(rng, k), randSlice(rng, k))
	const tg = 8
	out, masks := make([]float32, 64*tg), make([]uint64, tg)
	thr := [4]float32{5, 5, 5, 5}
	ng := len(pb) / 16
	for b.Loop() {
		for g := 0; g < ng; g += tg {
			w := min(tg, ng-g)
			ScoreTile(k, w, pu, pv[g*16*k:], pb[g*16:], &thr, out, masks)
		}
	}
	b.ReportMetric(2*float64(4*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func TestRelu(t *testing.T) {
	x := []float32{-1, 2, float32(math.NaN()), -0.5, 0, 3, -7, 1e-30, -1e-30, 4, -2}
	want := []float32{0, 2, float32(math.NaN()), 0, 0, 3, 0, 1e-30, 0, 4, 0}
	Relu(x)
	for i := range x {
		if x[i] != want[i] && !(math.IsNaN(float64(x[i])) && math.IsNaN(float64(want[i]))) {
			t.Fatalf("[%d] = %v, want %v", i, x[i], want[i])
		}
	}
}

func TestPeakGFLOPs(t *testing.T) {
	g := PeakGFLOPs(1, 20*time.Millisecond, true)
	if !HasAVX2FMA {
		if g != 0 {
			t.Fatalf("no assembly kernels, peak %v", g)
		}
		return
	}
	// one core does 16 float32 FLOPs per cycle or more with AVX2 + FMA (two
	// 8-wide FMA pipes): between 0.5 and 6 GHz that is 8 … 200 GFLOP/s
	if g < 8 || g > 200 {
		t.Fatalf("one core's FMA peak %v GFLOP/s is implausible", g)
	}
}

// variants runs f with each form of the kernels this CPU has (AVX2, and
// AVX-512 where present; the Go kernel elsewhere).
func variants(t *testing.T, f func(t *testing.T)) {
	saved := HasAVX512
	defer func() { HasAVX512 = saved }()
	forms := []bool{false}
	if saved {
		forms = append(forms, true)
	}
	for _, w := range forms {
		HasAVX512 = w
		t.Run(fmt.Sprintf("avx512=%v", w), f)
	}
}

func TestAdamMatchesGoLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	c := [6]float32{0.0031, 0.9, 0.1, 0.999, 0.001, 1e-8}
	for _, n := range []int{0, 1, 7, 8, 33, 1000} {
		p, g := randSlice(rng, n), randSlice(rng, n)
		m, v := randSlice(rng, n), randSlice(rng, n)
		for i := range v {
			v[i] = v[i] * v[i]
		}
		p2, m2, v2 := slices.Clone(p), slices.Clone(m), slices.Clone(v)
		for range 3 {
			Adam(p, g, m, v, &c)
			adamGo(p2, g, m2, v2, &c)
		}
		if !slices.Equal(p, p2) || !slices.Equal(m, m2) || !slices.Equal(v, v2) {
			t.Fatalf("n=%d: vector Adam differs from the Go loop", n)
		}
	}
}

// BenchmarkAdam: one update of a 64k-parameter tensor.
func BenchmarkAdam(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := 1 << 16
	p, g, m, v := randSlice(rng, n), randSlice(rng, n), make([]float32, n), make([]float32, n)
	c := [6]float32{0.001, 0.9, 0.1, 0.999, 0.001, 1e-8}
	for b.Loop() {
		Adam(p, g, m, v, &c)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gparams/s")
}
