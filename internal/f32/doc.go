// Package f32 holds Shelf's float32 compute kernels: a register-blocked
// matrix-multiply micro-kernel (4 rows × 16 columns, AVX2 + FMA assembly on
// amd64, plain Go elsewhere) under a packing GEMM, the retrieval kernel that
// scores a block of users against a tile of items and flags the scores that
// may enter each user's top-k heap, and a gonum-compatible BLAS whose Sgemm
// is the kernel's, for Gorgonia (gorgonia.Use).
//
// Every output element is one multiply-add chain over k in order, started
// from zero, so a result does not depend on the matrix sizes it was computed
// in (a row scored alone equals the same row scored in a block). The
// assembly fuses multiply and add (FMA); the Go kernel does not, so the two
// differ in the last bits — one process always uses one of them.
package f32
