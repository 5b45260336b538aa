//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 forms of the kernels, same packed layouts (A k×4, B k×16):
// a row of 16 columns is one Z register. Two k steps run on separate
// accumulators (even k in Z0..Z3, odd k in Z4..Z7, added at the end), so
// eight independent multiply-add chains keep both FMA pipes busy.

#define ZERO8 \
	VXORPS Z0, Z0, Z0 \
	VXORPS Z1, Z1, Z1 \
	VXORPS Z2, Z2, Z2 \
	VXORPS Z3, Z3, Z3 \
	VXORPS Z4, Z4, Z4 \
	VXORPS Z5, Z5, Z5 \
	VXORPS Z6, Z6, Z6 \
	VXORPS Z7, Z7, Z7

// KLOOP runs the k loop over CX steps (A at SI, B at DI, both advanced)
// and leaves the 4×16 products in Z0..Z3; uses AX and labels with prefix p.
#define KLOOP(pair, tail, done) \
	MOVQ CX, AX                        \
	SHRQ $1, AX                        \
	JEQ  tail                          \
pair:                                  \
	VMOVUPS          (DI), Z8          \
	VMOVUPS          64(DI), Z9        \
	VFMADD231PS.BCST (SI), Z8, Z0      \
	VFMADD231PS.BCST 4(SI), Z8, Z1     \
	VFMADD231PS.BCST 8(SI), Z8, Z2     \
	VFMADD231PS.BCST 12(SI), Z8, Z3    \
	VFMADD231PS.BCST 16(SI), Z9, Z4    \
	VFMADD231PS.BCST 20(SI), Z9, Z5    \
	VFMADD231PS.BCST 24(SI), Z9, Z6    \
	VFMADD231PS.BCST 28(SI), Z9, Z7    \
	ADDQ             $32, SI           \
	ADDQ             $128, DI          \
	DECQ             AX                \
	JNZ              pair              \
tail:                                  \
	TESTQ            $1, CX            \
	JEQ              done              \
	VMOVUPS          (DI), Z8          \
	VFMADD231PS.BCST (SI), Z8, Z0      \
	VFMADD231PS.BCST 4(SI), Z8, Z1     \
	VFMADD231PS.BCST 8(SI), Z8, Z2     \
	VFMADD231PS.BCST 12(SI), Z8, Z3    \
	ADDQ             $16, SI           \
	ADDQ             $64, DI           \
done:                                  \
	VADDPS           Z4, Z0, Z0        \
	VADDPS           Z5, Z1, Z1        \
	VADDPS           Z6, Z2, Z2        \
	VADDPS           Z7, Z3, Z3

// MASK16 compares row Zr with the threshold at off(R9) and ORs the 16 bits
// into AX at bit shift.
#define MASK16(zr, off, shift) \
	VBROADCASTSS off(R9), Z10  \
	VCMPPS $0x1d, Z10, zr, K1  \
	KMOVW  K1, BX              \
	SHLQ   $shift, BX          \
	ORQ    BX, AX

// func scoreTileAVX512(k, ng int, a, b, bias, thr, out *float32, masks *uint64)
TEXT ·scoreTileAVX512(SB), NOSPLIT, $0-64
	MOVQ  k+0(FP), DX
	MOVQ  ng+8(FP), R12
	MOVQ  b+24(FP), DI
	MOVQ  bias+32(FP), R8
	MOVQ  thr+40(FP), R9
	MOVQ  out+48(FP), R10
	MOVQ  masks+56(FP), R11
	TESTQ R12, R12
	JEQ   sdone

sgroup:
	MOVQ a+16(FP), SI
	MOVQ DX, CX
	ZERO8
	KLOOP(spair, stail, skdone)
	VMOVUPS (R8), Z8
	VADDPS  Z8, Z0, Z0
	VADDPS  Z8, Z1, Z1
	VADDPS  Z8, Z2, Z2
	VADDPS  Z8, Z3, Z3
	VMOVUPS Z0, (R10)
	VMOVUPS Z1, 64(R10)
	VMOVUPS Z2, 128(R10)
	VMOVUPS Z3, 192(R10)
	XORQ    AX, AX
	MASK16(Z0, 0, 0)
	MASK16(Z1, 4, 16)
	MASK16(Z2, 8, 32)
	MASK16(Z3, 12, 48)
	MOVQ    AX, (R11)
	ADDQ    $64, R8
	ADDQ    $256, R10
	ADDQ    $8, R11
	DECQ    R12
	JNZ     sgroup

sdone:
	VZEROUPPER
	RET

// func fmaLoop512(n int) — n iterations of 12 independent 16-wide FMAs on
// registers (384 float32 FLOPs each).
TEXT ·fmaLoop512(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	TESTQ  CX, CX
	JEQ    f5done

f5loop:
	VFMADD231PS Z12, Z13, Z0
	VFMADD231PS Z12, Z13, Z1
	VFMADD231PS Z12, Z13, Z2
	VFMADD231PS Z12, Z13, Z3
	VFMADD231PS Z12, Z13, Z4
	VFMADD231PS Z12, Z13, Z5
	VFMADD231PS Z12, Z13, Z6
	VFMADD231PS Z12, Z13, Z7
	VFMADD231PS Z12, Z13, Z8
	VFMADD231PS Z12, Z13, Z9
	VFMADD231PS Z12, Z13, Z10
	VFMADD231PS Z12, Z13, Z11
	DECQ        CX
	JNZ         f5loop

f5done:
	VZEROUPPER
	RET

// func kern4x16sAVX512(k int, a *float32, rs, cs int, b, c *float32, ldc int, accum bool)
// C[4][16] (rows ldc apart) = A·B, or C += A·B when accum; B packed k×16,
// A's element (i, p) at a + 4·(i·rs + p·cs): packed (rs 1, cs 4), or a
// row-major (rs = lda, cs = 1) or transposed (rs = 1, cs = lda) block read
// in place. Even k into Z0..Z3, odd k into Z4..Z7, as KLOOP: the same bits
// for every layout.
TEXT ·kern4x16sAVX512(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rs+16(FP), R11
	SHLQ $2, R11
	MOVQ cs+24(FP), R12
	SHLQ $2, R12
	MOVQ b+32(FP), DI
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), BX
	SHLQ $2, BX
	LEAQ (R11)(R11*2), R13
	LEAQ (SI)(R12*1), R8
	LEAQ (R12)(R12*1), R9
	ZERO8
	MOVQ CX, AX
	SHRQ $1, AX
	JEQ  xtail

xpair:
	VMOVUPS          (DI), Z8
	VMOVUPS          64(DI), Z9
	VFMADD231PS.BCST (SI), Z8, Z0
	VFMADD231PS.BCST (SI)(R11*1), Z8, Z1
	VFMADD231PS.BCST (SI)(R11*2), Z8, Z2
	VFMADD231PS.BCST (SI)(R13*1), Z8, Z3
	VFMADD231PS.BCST (R8), Z9, Z4
	VFMADD231PS.BCST (R8)(R11*1), Z9, Z5
	VFMADD231PS.BCST (R8)(R11*2), Z9, Z6
	VFMADD231PS.BCST (R8)(R13*1), Z9, Z7
	ADDQ             R9, SI
	ADDQ             R9, R8
	ADDQ             $128, DI
	DECQ             AX
	JNZ              xpair

xtail:
	TESTQ            $1, CX
	JEQ              xdone
	VMOVUPS          (DI), Z8
	VFMADD231PS.BCST (SI), Z8, Z0
	VFMADD231PS.BCST (SI)(R11*1), Z8, Z1
	VFMADD231PS.BCST (SI)(R11*2), Z8, Z2
	VFMADD231PS.BCST (SI)(R13*1), Z8, Z3

xdone:
	VADDPS  Z4, Z0, Z0
	VADDPS  Z5, Z1, Z1
	VADDPS  Z6, Z2, Z2
	VADDPS  Z7, Z3, Z3
	LEAQ    (DX)(BX*1), R8
	LEAQ    (R8)(BX*1), R9
	LEAQ    (R9)(BX*1), R10
	MOVBQZX accum+56(FP), AX
	TESTQ   AX, AX
	JEQ     xput
	VADDPS  (DX), Z0, Z0
	VADDPS  (R8), Z1, Z1
	VADDPS  (R9), Z2, Z2
	VADDPS  (R10), Z3, Z3

xput:
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, (R8)
	VMOVUPS Z2, (R9)
	VMOVUPS Z3, (R10)
	VZEROUPPER
	RET

// func dotAVX512(a, b *float32, n int) float32 — n a multiple of 16: two
// 16-wide accumulators (32 floats per step), a 16-float tail, then a fixed
// reduction order.
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ   a+0(FP), SI
	MOVQ   b+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	MOVQ   CX, AX
	SHRQ   $5, AX
	JEQ    dtail

dloop:
	VMOVUPS     (SI), Z2
	VMOVUPS     64(SI), Z3
	VFMADD231PS (DI), Z2, Z0
	VFMADD231PS 64(DI), Z3, Z1
	ADDQ        $128, SI
	ADDQ        $128, DI
	DECQ        AX
	JNZ         dloop

dtail:
	TESTQ       $16, CX
	JEQ         dsum
	VMOVUPS     (SI), Z2
	VFMADD231PS (DI), Z2, Z0

dsum:
	VADDPS        Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VADDPS        X1, X0, X0
	VPERMILPS     $0x4e, X0, X1
	VADDPS        X1, X0, X0
	VMOVSHDUP     X0, X1
	VADDSS        X1, X0, X0
	VMOVSS        X0, ret+24(FP)
	VZEROUPPER
	RET

// func kern8x32AVX512(k int, a *float32, rs, cs int, b0, b1 *float32, bs0, bs1 int, c *float32, ldc int, flags int)
// C[8][32] (rows ldc apart) = A·[B0 B1], or C += when accum. A's element
// (i, p) at a + 4·(i·rs + p·cs) (in place, or packed with rs 1, cs 8);
// B0 and B1 hold columns 0–15 and 16–31, their rows bs0 and bs1 floats
// apart (16 when packed; a row-major B is read in place). Sixteen accumulators, one
// per row and half, each a plain chain of FMAs over p = 0, 1, …: every
// element gets the same operations in the same order wherever its tile
// sits. Per k: 2 loads of B, 8 broadcasts, 16 FMAs (the 4×16 kernel needs
// 5 loads per 4 FMAs). flags: 1 accumulate into C, 2 then apply ReLU.
TEXT ·kern8x32AVX512(SB), NOSPLIT, $0-88
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rs+16(FP), R11
	SHLQ $2, R11
	MOVQ cs+24(FP), R12
	SHLQ $2, R12
	MOVQ b0+32(FP), DI
	MOVQ b1+40(FP), R9
	MOVQ bs0+48(FP), AX
	SHLQ $2, AX
	MOVQ bs1+56(FP), R10
	SHLQ $2, R10
	MOVQ c+64(FP), DX
	MOVQ ldc+72(FP), BX
	SHLQ $2, BX
	LEAQ (R11)(R11*2), R13
	LEAQ (SI)(R11*4), R8
	VXORPS Z0, Z0, Z0
	VXORPS Z1, Z1, Z1
	VXORPS Z2, Z2, Z2
	VXORPS Z3, Z3, Z3
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	VXORPS Z12, Z12, Z12
	VXORPS Z13, Z13, Z13
	VXORPS Z14, Z14, Z14
	VXORPS Z15, Z15, Z15
	TESTQ CX, CX
	JEQ   ydone

yloop:
	VMOVUPS (DI), Z16
	VMOVUPS (R9), Z17
	VBROADCASTSS (SI), Z18
	VFMADD231PS  Z18, Z16, Z0
	VFMADD231PS  Z18, Z17, Z8
	VBROADCASTSS (SI)(R11*1), Z19
	VFMADD231PS  Z19, Z16, Z1
	VFMADD231PS  Z19, Z17, Z9
	VBROADCASTSS (SI)(R11*2), Z20
	VFMADD231PS  Z20, Z16, Z2
	VFMADD231PS  Z20, Z17, Z10
	VBROADCASTSS (SI)(R13*1), Z21
	VFMADD231PS  Z21, Z16, Z3
	VFMADD231PS  Z21, Z17, Z11
	VBROADCASTSS (R8), Z18
	VFMADD231PS  Z18, Z16, Z4
	VFMADD231PS  Z18, Z17, Z12
	VBROADCASTSS (R8)(R11*1), Z19
	VFMADD231PS  Z19, Z16, Z5
	VFMADD231PS  Z19, Z17, Z13
	VBROADCASTSS (R8)(R11*2), Z20
	VFMADD231PS  Z20, Z16, Z6
	VFMADD231PS  Z20, Z17, Z14
	VBROADCASTSS (R8)(R13*1), Z21
	VFMADD231PS  Z21, Z16, Z7
	VFMADD231PS  Z21, Z17, Z15
	ADDQ    R12, SI
	ADDQ    R12, R8
	ADDQ    AX, DI
	ADDQ    R10, R9
	DECQ    CX
	JNZ     yloop

ydone:
	MOVQ    DX, R10
	MOVQ    flags+80(FP), AX
	TESTQ   $1, AX
	JEQ     yrelu
	VADDPS  (R10), Z0, Z0
	VADDPS  64(R10), Z8, Z8
	ADDQ    BX, R10
	VADDPS  (R10), Z1, Z1
	VADDPS  64(R10), Z9, Z9
	ADDQ    BX, R10
	VADDPS  (R10), Z2, Z2
	VADDPS  64(R10), Z10, Z10
	ADDQ    BX, R10
	VADDPS  (R10), Z3, Z3
	VADDPS  64(R10), Z11, Z11
	ADDQ    BX, R10
	VADDPS  (R10), Z4, Z4
	VADDPS  64(R10), Z12, Z12
	ADDQ    BX, R10
	VADDPS  (R10), Z5, Z5
	VADDPS  64(R10), Z13, Z13
	ADDQ    BX, R10
	VADDPS  (R10), Z6, Z6
	VADDPS  64(R10), Z14, Z14
	ADDQ    BX, R10
	VADDPS  (R10), Z7, Z7
	VADDPS  64(R10), Z15, Z15
	ADDQ    BX, R10
	MOVQ    DX, R10

yrelu:
	TESTQ   $2, AX
	JEQ     yput
	VXORPS  Z31, Z31, Z31
	VMAXPS  Z0, Z31, Z0 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z1, Z31, Z1 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z2, Z31, Z2 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z3, Z31, Z3 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z4, Z31, Z4 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z5, Z31, Z5 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z6, Z31, Z6 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z7, Z31, Z7 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z8, Z31, Z8 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z9, Z31, Z9 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z10, Z31, Z10 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z11, Z31, Z11 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z12, Z31, Z12 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z13, Z31, Z13 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z14, Z31, Z14 // max(0, x): NaN and −0 kept, as f32.Relu
	VMAXPS  Z15, Z31, Z15 // max(0, x): NaN and −0 kept, as f32.Relu

yput:
	VMOVUPS Z0, (R10)
	VMOVUPS Z8, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z1, (R10)
	VMOVUPS Z9, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z2, (R10)
	VMOVUPS Z10, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z3, (R10)
	VMOVUPS Z11, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z4, (R10)
	VMOVUPS Z12, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z5, (R10)
	VMOVUPS Z13, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z6, (R10)
	VMOVUPS Z14, 64(R10)
	ADDQ    BX, R10
	VMOVUPS Z7, (R10)
	VMOVUPS Z15, 64(R10)
	ADDQ    BX, R10
	VZEROUPPER
	RET

// func axpyAVX512(alpha float32, x, y *float32, n int) — y += alpha·x by
// FMA, n a multiple of 16
TEXT ·axpyAVX512(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Z0
	MOVQ         x+8(FP), SI
	MOVQ         y+16(FP), DI
	MOVQ         n+24(FP), CX
	SHRQ         $4, CX
	JEQ          xdone

xloop:
	VMOVUPS     (DI), Z1
	VFMADD231PS (SI), Z0, Z1
	VMOVUPS     Z1, (DI)
	ADDQ        $64, SI
	ADDQ        $64, DI
	DECQ        CX
	JNZ         xloop

xdone:
	VZEROUPPER
	RET

// func gatherProdAVX512(dst, table *float32, items *int32, n, d int, u, dots *float32)
// For each r < n, with v the d floats of row items[r] of table (d a multiple
// of 16): dst row r (2d floats) = [v, u⊙v], dots[r] = Σ u⊙v (16 lanes over
// the chunks, then a fixed reduction).
TEXT ·gatherProdAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ table+8(FP), R8
	MOVQ items+16(FP), R9
	MOVQ n+24(FP), R10
	MOVQ d+32(FP), R11
	MOVQ u+40(FP), R12
	MOVQ dots+48(FP), R13
	MOVQ R11, R14
	SHLQ $2, R14 // d in bytes
	TESTQ R10, R10
	JEQ   pdone

prow:
	MOVLQSX (R9), AX
	IMULQ   R14, AX
	LEAQ    (R8)(AX*1), SI // source row
	LEAQ    (DI)(R14*1), DX // second half of the destination row
	MOVQ    R12, BX
	MOVQ    R11, CX
	SHRQ    $4, CX
	VXORPS  Z2, Z2, Z2

pchunk:
	VMOVUPS (SI), Z0
	VMOVUPS Z0, (DI)
	VMULPS  (BX), Z0, Z1
	VMOVUPS Z1, (DX)
	VADDPS  Z1, Z2, Z2
	ADDQ    $64, SI
	ADDQ    $64, DI
	ADDQ    $64, DX
	ADDQ    $64, BX
	DECQ    CX
	JNZ     pchunk

	VEXTRACTF64X4 $1, Z2, Y3
	VADDPS        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VADDPS        X3, X2, X2
	VPERMILPS     $0x4e, X2, X3
	VADDPS        X3, X2, X2
	VMOVSHDUP     X2, X3
	VADDSS        X3, X2, X2
	VMOVSS        X2, (R13)
	MOVQ          DX, DI // next row starts after the second half
	ADDQ          $4, R9
	ADDQ          $4, R13
	DECQ          R10
	JNZ           prow

pdone:
	VZEROUPPER
	RET

// func adamAVX512(p, grad, m, v *float32, n int, c *[6]float32) — adamAsm
// 16 lanes at a time (n a multiple of 16), the same operations in the same
// order.
TEXT ·adamAVX512(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         m+16(FP), R8
	MOVQ         v+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         c+40(FP), AX
	VBROADCASTSS (AX), Z10
	VBROADCASTSS 4(AX), Z11
	VBROADCASTSS 8(AX), Z12
	VBROADCASTSS 12(AX), Z13
	VBROADCASTSS 16(AX), Z14
	VBROADCASTSS 20(AX), Z15
	SHRQ         $4, CX
	JEQ          zadone

zaloop:
	VMOVUPS (SI), Z0
	VMULPS  (R8), Z11, Z1
	VMULPS  Z0, Z12, Z2
	VADDPS  Z2, Z1, Z1
	VMOVUPS Z1, (R8)
	VMULPS  (R9), Z13, Z3
	VMULPS  Z0, Z14, Z4
	VMULPS  Z0, Z4, Z4
	VADDPS  Z4, Z3, Z3
	VMOVUPS Z3, (R9)
	VSQRTPS Z3, Z5
	VADDPS  Z15, Z5, Z5
	VMULPS  Z1, Z10, Z6
	VDIVPS  Z5, Z6, Z6
	VMOVUPS (DI), Z7
	VSUBPS  Z6, Z7, Z7
	VMOVUPS Z7, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	ADDQ    $64, R8
	ADDQ    $64, R9
	DECQ    CX
	JNZ     zaloop

zadone:
	VZEROUPPER
	RET

// func addScaledAVX512(dst, x *float32, alpha float32, n int) — dst += alpha·x
// as a product then a sum (no FMA: the Go loop's bits), n a multiple of 16
TEXT ·addScaledAVX512(SB), NOSPLIT, $0-32
	MOVQ         dst+0(FP), DI
	MOVQ         x+8(FP), SI
	VBROADCASTSS alpha+16(FP), Z0
	MOVQ         n+24(FP), CX
	SHRQ         $4, CX
	JEQ          sdone2

sloop2:
	VMULPS  (SI), Z0, Z1
	VADDPS  (DI), Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     sloop2

sdone2:
	VZEROUPPER
	RET

// func mulAVX512(dst, a, b *float32, n int) — dst = a⊙b, n a multiple of 16
TEXT ·mulAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JEQ  mdone

mloop:
	VMOVUPS (SI), Z0
	VMULPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     mloop

mdone:
	VZEROUPPER
	RET
