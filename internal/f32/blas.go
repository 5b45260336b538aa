package f32

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is gonum's pure-Go BLAS with Sgemm replaced by Gemm (the AVX2 + FMA
// micro-kernel where the CPU has it): what Gorgonia's float32 matrix
// products run on after gorgonia.Use(f32.BLAS{}).
type BLAS struct{ gonum.Implementation }

// Sgemm implements blas.Float32, on Gemm for every shape: the MLP's output
// layer (n = 1) padded to a 16-wide panel still beats gonum's path for it,
// which splits even such products across goroutines (training step +15 %).
func (b BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, bm []float32, ldb int, beta float32, c []float32, ldc int) {
	Gemm(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc)
}
