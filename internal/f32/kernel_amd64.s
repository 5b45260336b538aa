//go:build amd64 && !purego

#include "textflag.h"

// One k step of the 4×16 micro-kernel: two 8-wide loads of B's row, four
// broadcasts of A's column, eight fused multiply-adds into Y0..Y7
// (row r in Y(2r), Y(2r+1)).
#define STEP \
	VMOVUPS      (DI), Y8       \
	VMOVUPS      32(DI), Y9     \
	VBROADCASTSS (SI), Y10      \
	VFMADD231PS  Y8, Y10, Y0    \
	VFMADD231PS  Y9, Y10, Y1    \
	VBROADCASTSS 4(SI), Y11     \
	VFMADD231PS  Y8, Y11, Y2    \
	VFMADD231PS  Y9, Y11, Y3    \
	VBROADCASTSS 8(SI), Y12     \
	VFMADD231PS  Y8, Y12, Y4    \
	VFMADD231PS  Y9, Y12, Y5    \
	VBROADCASTSS 12(SI), Y13    \
	VFMADD231PS  Y8, Y13, Y6    \
	VFMADD231PS  Y9, Y13, Y7    \
	ADDQ         $16, SI        \
	ADDQ         $64, DI

#define ZERO \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

// func kern4x16asm(k int, a, b, c *float32, ldc int, accum bool)
TEXT ·kern4x16asm(SB), NOSPLIT, $0-41
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), BX
	SHLQ $2, BX
	ZERO
	TESTQ CX, CX
	JEQ   kstore

kloop:
	STEP
	DECQ CX
	JNZ  kloop

kstore:
	LEAQ    (DX)(BX*1), R8
	LEAQ    (R8)(BX*1), R9
	LEAQ    (R9)(BX*1), R10
	MOVBQZX accum+40(FP), AX
	TESTQ   AX, AX
	JEQ     kput
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VADDPS  (R8), Y2, Y2
	VADDPS  32(R8), Y3, Y3
	VADDPS  (R9), Y4, Y4
	VADDPS  32(R9), Y5, Y5
	VADDPS  (R10), Y6, Y6
	VADDPS  32(R10), Y7, Y7

kput:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, (R8)
	VMOVUPS Y3, 32(R8)
	VMOVUPS Y4, (R9)
	VMOVUPS Y5, 32(R9)
	VMOVUPS Y6, (R10)
	VMOVUPS Y7, 32(R10)
	VZEROUPPER
	RET

// Compares the two halves of row r (Y(lo), Y(hi)) with the broadcast
// threshold at off(R9) and ORs the 16 bits into AX at bit 16r.
#define MASKROW(lo, hi, off, shift) \
	VBROADCASTSS off(R9), Y10       \
	VCMPPS       $0x1d, Y10, lo, Y11 \
	VMOVMSKPS    Y11, BX            \
	VCMPPS       $0x1d, Y10, hi, Y12 \
	VMOVMSKPS    Y12, R13           \
	SHLQ         $8, R13            \
	ORQ          R13, BX            \
	SHLQ         $shift, BX         \
	ORQ          BX, AX

// func scoreTileAsm(k, ng int, a, b, bias, thr, out *float32, masks *uint64)
TEXT ·scoreTileAsm(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), DX
	MOVQ ng+8(FP), R12
	MOVQ b+24(FP), DI
	MOVQ bias+32(FP), R8
	MOVQ thr+40(FP), R9
	MOVQ out+48(FP), R10
	MOVQ masks+56(FP), R11
	TESTQ R12, R12
	JEQ   sdone

sgroup:
	MOVQ a+16(FP), SI
	MOVQ DX, CX
	ZERO

sloop:
	STEP
	DECQ CX
	JNZ  sloop

	VMOVUPS (R8), Y8
	VMOVUPS 32(R8), Y9
	VADDPS  Y8, Y0, Y0
	VADDPS  Y9, Y1, Y1
	VADDPS  Y8, Y2, Y2
	VADDPS  Y9, Y3, Y3
	VADDPS  Y8, Y4, Y4
	VADDPS  Y9, Y5, Y5
	VADDPS  Y8, Y6, Y6
	VADDPS  Y9, Y7, Y7
	VMOVUPS Y0, (R10)
	VMOVUPS Y1, 32(R10)
	VMOVUPS Y2, 64(R10)
	VMOVUPS Y3, 96(R10)
	VMOVUPS Y4, 128(R10)
	VMOVUPS Y5, 160(R10)
	VMOVUPS Y6, 192(R10)
	VMOVUPS Y7, 224(R10)
	XORQ    AX, AX
	MASKROW(Y0, Y1, 0, 0)
	MASKROW(Y2, Y3, 4, 16)
	MASKROW(Y4, Y5, 8, 32)
	MASKROW(Y6, Y7, 12, 48)
	MOVQ    AX, (R11)
	ADDQ    $64, R8
	ADDQ    $256, R10
	ADDQ    $8, R11
	DECQ    R12
	JNZ     sgroup

sdone:
	VZEROUPPER
	RET

// func reluAsm(x *float32, n int)  — x[i] = max(x[i], 0), n a multiple of 8
TEXT ·reluAsm(SB), NOSPLIT, $0-16
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	SHRQ   $3, CX
	JEQ    rdone
	VXORPS Y1, Y1, Y1

rloop:
	VMAXPS  (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     rloop

rdone:
	VZEROUPPER
	RET

// func reluGradAsm(out, y, grad *float32, n int) — out[i] = grad[i] where
// y[i] > 0 (ordered: NaN fails), else 0; n a multiple of 8
TEXT ·reluGradAsm(SB), NOSPLIT, $0-32
	MOVQ   out+0(FP), DI
	MOVQ   y+8(FP), SI
	MOVQ   grad+16(FP), DX
	MOVQ   n+24(FP), CX
	SHRQ   $3, CX
	JEQ    gdone
	VXORPS Y1, Y1, Y1

gloop:
	VMOVUPS (SI), Y0
	VCMPPS  $0x1e, Y1, Y0, Y2
	VANDPS  (DX), Y2, Y3
	VMOVUPS Y3, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     gloop

gdone:
	VZEROUPPER
	RET

// func fmaLoop(n int) — n iterations of 12 independent 8-wide FMAs on
// registers (192 float32 FLOPs each): the core's FMA throughput, no memory.
TEXT ·fmaLoop(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y12, Y12, Y12
	VXORPS Y13, Y13, Y13
	TESTQ  CX, CX
	JEQ    fdone

floop:
	VFMADD231PS Y12, Y13, Y0
	VFMADD231PS Y12, Y13, Y1
	VFMADD231PS Y12, Y13, Y2
	VFMADD231PS Y12, Y13, Y3
	VFMADD231PS Y12, Y13, Y4
	VFMADD231PS Y12, Y13, Y5
	VFMADD231PS Y12, Y13, Y6
	VFMADD231PS Y12, Y13, Y7
	VFMADD231PS Y12, Y13, Y8
	VFMADD231PS Y12, Y13, Y9
	VFMADD231PS Y12, Y13, Y10
	VFMADD231PS Y12, Y13, Y11
	DECQ        CX
	JNZ         floop

fdone:
	VZEROUPPER
	RET

// func adamAsm(p, grad, m, v *float32, n int, c *[6]float32)
// c = step, b1, 1−b1, b2, 1−b2, eps; n a multiple of 8. Per element, in the
// Go loop's operation order (no fused multiply-adds):
//   m = b1·m + (1−b1)·g;  v = b2·v + ((1−b2)·g)·g;  p = p − (step·m)/(√v + eps)
TEXT ·adamAsm(SB), NOSPLIT, $0-48
	MOVQ         p+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         m+16(FP), R8
	MOVQ         v+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         c+40(FP), AX
	VBROADCASTSS (AX), Y10
	VBROADCASTSS 4(AX), Y11
	VBROADCASTSS 8(AX), Y12
	VBROADCASTSS 12(AX), Y13
	VBROADCASTSS 16(AX), Y14
	VBROADCASTSS 20(AX), Y15
	SHRQ         $3, CX
	JEQ          adone

aloop:
	VMOVUPS (SI), Y0
	VMULPS  (R8), Y11, Y1
	VMULPS  Y0, Y12, Y2
	VADDPS  Y2, Y1, Y1
	VMOVUPS Y1, (R8)
	VMULPS  (R9), Y13, Y3
	VMULPS  Y0, Y14, Y4
	VMULPS  Y0, Y4, Y4
	VADDPS  Y4, Y3, Y3
	VMOVUPS Y3, (R9)
	VSQRTPS Y3, Y5
	VADDPS  Y15, Y5, Y5
	VMULPS  Y1, Y10, Y6
	VDIVPS  Y5, Y6, Y6
	VMOVUPS (DI), Y7
	VSUBPS  Y6, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     aloop

adone:
	VZEROUPPER
	RET
