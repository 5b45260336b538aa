package nn

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

// The ReLU gradient passes g exactly where the ReLU output is positive;
// f32.Relu leaves −0 and NaN as they are, and neither may pass.
func TestReLUGradMask(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	nan := float32(math.NaN())
	negNaN := math.Float32frombits(math.Float32bits(nan) | 1<<31)
	y := []float32{0, negZero, 1, 1e-40, float32(math.Inf(1)), nan, negNaN, 3, -1, 2, nan, 0.5}
	want := []float32{0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1} // 8 in the vector loop, 4 in the tail
	g := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	mk := func(x []float32) *tensor.Dense { return tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(x)) }
	var op reluGradOp
	v, err := op.Do(mk(y), mk(g))
	if err != nil {
		t.Fatal(err)
	}
	got := v.Data().([]float32)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("y=%v: gradient %v, want %v", y[i], got[i], want[i])
		}
	}
}
