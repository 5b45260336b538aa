package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shelfml/shelf/internal/f32"
)

// Shelf's own Gorgonia ops for the ranking and purchase graphs: each MLP
// layer (denseOp), u⊙v, a row's logit (towerOp) and the loss. Gorgonia still
// differentiates the graph: each op tells it, through SymDiff, which nodes
// make up its gradient, and those are more ops from this file. They exist
// because the generic ops cost several times the matrix products at these
// sizes: Rectify is a branchy ≥ comparison plus a product, BroadcastAdd
// materialises the bias as a B×n matrix, a loss is a chain of a dozen
// element-wise ops each way, and every op result is allocated afresh on
// each run (vm.Reset drops the VM's registers). These ops fuse that work,
// keep their result buffers across runs (shapes are fixed per graph) and run
// on internal/f32's kernels. The finite-difference test in graph_test.go
// checks every gradient, after a run on other inputs.

var (
	tyA   = hm.TypeVariable('a')
	tyMat = &G.TensorType{Dims: 2, Of: tyA}
	tyVec = &G.TensorType{Dims: 1, Of: tyA}
)

// buf is an op's result, allocated on first use and reused by later runs.
type buf struct{ t *tensor.Dense }

func (b *buf) get(shape ...int) (*tensor.Dense, []float32) {
	if b.t == nil || !b.t.Shape().Eq(tensor.Shape(shape)) {
		b.t = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	}
	return b.t, f32s(b.t)
}

// f32s is t's float32 elements (t must be float32). Dense.Data builds the
// slice through reflect and allocates, on every op's every input; the raw
// bytes do neither.
func f32s(t *tensor.Dense) []float32 {
	raw := t.Raw
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(raw))), len(raw)/4)
}

// matrixArg unpacks a float32 matrix input.
func matrixArg(op string, v G.Value) (rows, cols int, data []float32, err error) {
	t, ok := v.(*tensor.Dense)
	if !ok || t.Dtype() != tensor.Float32 || t.Dims() != 2 {
		return 0, 0, nil, fmt.Errorf("%s: want a float32 matrix, got %v", op, v)
	}
	s := t.Shape()
	return s[0], s[1], f32s(t), nil
}

// vectorArg unpacks a float32 vector (or any tensor, read flat).
func vectorArg(op string, v G.Value) ([]float32, error) {
	t, ok := v.(*tensor.Dense)
	if !ok || t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("%s: want a float32 tensor, got %v", op, v)
	}
	return f32s(t), nil
}

// opBase holds the parts of the Op interface that are the same for every
// op here.
type opBase struct{}

func (opBase) ReturnsPtr() bool       { return false }
func (opBase) CallsExtern() bool      { return false }
func (opBase) OverwritesInput() int   { return -1 }
func hashOf(s fmt.Stringer) uint32    { h := fnv.New32a(); fmt.Fprint(h, s.String()); return h.Sum32() }
func writeHash(h hash.Hash, s string) { fmt.Fprint(h, s) }

// denseOp is one dense layer, y = act(Σₚ xₚ·Wₚ + b), over P input blocks
// xₚ (B×inₚ) with their weight row blocks Wₚ (inₚ×out) and bias b (out).
// Its inputs are x₀…x_{P−1}, W₀…W_{P−1}, b; act is ReLU or the identity.
type denseOp struct {
	opBase
	P    int
	relu bool
	out  buf
}

// dense applies a denseOp to the input blocks xs, weights ws and bias b.
func dense(xs, ws []*G.Node, b *G.Node, relu bool) (*G.Node, error) {
	in := append(append(append([]*G.Node{}, xs...), ws...), b)
	return G.ApplyOp(&denseOp{P: len(xs), relu: relu}, in...)
}

func (op *denseOp) Arity() int { return 2*op.P + 1 }
func (op *denseOp) Type() hm.Type {
	ts := make([]hm.Type, 0, 2*op.P+2)
	for range 2 * op.P {
		ts = append(ts, tyMat)
	}
	return hm.NewFnType(append(ts, tyVec, tyMat)...)
}
func (op *denseOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(in), op.Arity())
	}
	rows, err := in[0].DimSize(0)
	if err != nil {
		return nil, err
	}
	cols, err := in[op.P].DimSize(1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{rows, cols}, nil
}
func (op *denseOp) String() string {
	if op.relu {
		return fmt.Sprintf("DenseReLU%d", op.P)
	}
	return fmt.Sprintf("Dense%d", op.P)
}
func (op *denseOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *denseOp) Hashcode() uint32      { return hashOf(op) }

func (op *denseOp) Do(in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(in), op.Arity())
	}
	b, err := vectorArg(op.String(), in[2*op.P])
	if err != nil {
		return nil, err
	}
	B, n := 0, len(b)
	for p := range op.P {
		rows, k, x, err := matrixArg(op.String(), in[p])
		if err != nil {
			return nil, err
		}
		wk, wn, w, err := matrixArg(op.String(), in[op.P+p])
		if err != nil {
			return nil, err
		}
		if p == 0 {
			B = rows
		}
		if rows != B || wk != k || wn != n {
			return nil, fmt.Errorf("%v: block %d is %d×%d by %d×%d, want %d×k by k×%d", op, p, rows, k, wk, wn, B, n)
		}
		_, y := op.out.get(B, n)
		if p == 0 {
			for r := range B {
				copy(y[r*n:(r+1)*n], b)
			}
		}
		if op.relu && p == op.P-1 {
			f32.GemmReLU(false, false, B, n, k, 1, x, k, w, n, 1, y, n) // the ReLU fused into the last product
		} else {
			f32.Gemm(false, false, B, n, k, 1, x, k, w, n, 1, y, n)
		}
	}
	t, _ := op.out.get(B, n)
	return t, nil
}

func (op *denseOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff: with dz = ∂/∂(pre-activation), ∂xₚ = dz·Wₚᵀ, ∂Wₚ = xₚᵀ·dz and
// ∂b = Σ_rows dz.
func (op *denseOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: %d inputs, want %d", op, len(in), op.Arity())
	}
	dz := grad
	if op.relu {
		var err error
		if dz, err = G.ApplyOp(&reluGradOp{}, output, grad); err != nil {
			return nil, err
		}
	}
	out := make(G.Nodes, op.Arity())
	for p := range op.P {
		x, w := in[p], in[op.P+p]
		var err error
		if out[p], err = G.ApplyOp(&matMulOp{transB: true}, dz, w); err != nil {
			return nil, err
		}
		if out[op.P+p], err = G.ApplyOp(&matMulOp{transA: true}, x, dz); err != nil {
			return nil, err
		}
	}
	var err error
	out[2*op.P], err = G.ApplyOp(&colSumOp{}, dz)
	return out, err
}

// reluGradOp is g where the ReLU output y is positive, else 0: inputs y, g.
type reluGradOp struct {
	opBase
	out buf
}

func (*reluGradOp) Arity() int     { return 2 }
func (*reluGradOp) Type() hm.Type  { return hm.NewFnType(tyA, tyA, tyA) }
func (*reluGradOp) String() string { return "ReLUGrad" }
func (op *reluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("ReLUGrad: input shape %v", in[0])
	}
	return s.Clone(), nil
}
func (op *reluGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *reluGradOp) Hashcode() uint32      { return hashOf(op) }

// Do masks without a branch (f32.ReluGrad compares 8 at a time): about half
// the units are active, so a compare-and-jump would mispredict often
// (Gorgonia's Rectify mask did).
func (op *reluGradOp) Do(in ...G.Value) (G.Value, error) {
	y, err := vectorArg("ReLUGrad", in[0])
	if err != nil {
		return nil, err
	}
	g, err := vectorArg("ReLUGrad", in[1])
	if err != nil {
		return nil, err
	}
	if len(y) != len(g) {
		return nil, fmt.Errorf("ReLUGrad: %d outputs, %d gradients", len(y), len(g))
	}
	t, out := op.out.get(in[1].Shape()...)
	f32.ReluGrad(out, y, g)
	return t, nil
}

// matMulOp is op(A)·op(B) on f32.Gemm into a buffer kept across runs.
type matMulOp struct {
	opBase
	transA, transB bool
	out            buf
}

func (op *matMulOp) Arity() int    { return 2 }
func (op *matMulOp) Type() hm.Type { return hm.NewFnType(tyMat, tyMat, tyMat) }
func (op *matMulOp) String() string {
	return fmt.Sprintf("MatMul(tA=%v,tB=%v)", op.transA, op.transB)
}
func (op *matMulOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *matMulOp) Hashcode() uint32      { return hashOf(op) }
func (op *matMulOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	dim := func(d G.DimSizer, i int, t bool) (int, error) {
		if t {
			i = 1 - i
		}
		return d.DimSize(i)
	}
	m, err := dim(in[0], 0, op.transA)
	if err != nil {
		return nil, err
	}
	n, err := dim(in[1], 1, op.transB)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{m, n}, nil
}

func (op *matMulOp) Do(in ...G.Value) (G.Value, error) {
	ar, ac, a, err := matrixArg(op.String(), in[0])
	if err != nil {
		return nil, err
	}
	br, bc, b, err := matrixArg(op.String(), in[1])
	if err != nil {
		return nil, err
	}
	m, k := ar, ac
	if op.transA {
		m, k = ac, ar
	}
	kb, n := br, bc
	if op.transB {
		kb, n = bc, br
	}
	if k != kb {
		return nil, fmt.Errorf("%v: inner sizes %d and %d differ", op, k, kb)
	}
	t, c := op.out.get(m, n)
	f32.Gemm(op.transA, op.transB, m, n, k, 1, a, ac, b, bc, 0, c, n)
	return t, nil
}

// colSumOp sums a B×n matrix over its rows into an n-vector.
type colSumOp struct {
	opBase
	out buf
}

func (op *colSumOp) Arity() int            { return 1 }
func (op *colSumOp) Type() hm.Type         { return hm.NewFnType(tyMat, tyVec) }
func (op *colSumOp) String() string        { return "ColSum" }
func (op *colSumOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *colSumOp) Hashcode() uint32      { return hashOf(op) }
func (op *colSumOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := in[0].DimSize(1)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{n}, nil
}

func (op *colSumOp) Do(in ...G.Value) (G.Value, error) {
	rows, n, x, err := matrixArg(op.String(), in[0])
	if err != nil {
		return nil, err
	}
	t, s := op.out.get(n)
	copy(s, x[:n])
	for r := 1; r < rows; r++ {
		f32.AddScaled(s, 1, x[r*n:(r+1)*n]) // row by row: the same sums as a Go loop
	}
	return t, nil
}

// scalarArg reads a float32 scalar (the gradient seed of the cost).
func scalarArg(op string, v G.Value) (float32, error) {
	switch x := v.(type) {
	case *G.F32:
		return float32(*x), nil
	case *tensor.Dense:
		if d, ok := x.Data().([]float32); ok && len(d) == 1 {
			return d[0], nil
		}
		if d, ok := x.Data().(float32); ok {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%s: want a float32 scalar, got %v", op, v)
}

// towerOp is a ranking row's logit: z = h + <u, v> + b, from the MLP head's
// output h (B), the gathered rows u, v (B×D) and item biases b (B). One op
// for what took a product, a row sum, two additions and their gradients.
type towerOp struct {
	opBase
	out buf
}

func tower(h, u, v, b *G.Node) (*G.Node, error) { return G.ApplyOp(&towerOp{}, h, u, v, b) }

func (*towerOp) Arity() int               { return 4 }
func (*towerOp) Type() hm.Type            { return hm.NewFnType(tyVec, tyMat, tyMat, tyVec, tyVec) }
func (*towerOp) String() string           { return "Tower" }
func (op *towerOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *towerOp) Hashcode() uint32      { return hashOf(op) }
func (op *towerOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := in[0].DimSize(0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{n}, nil
}

func (op *towerOp) Do(in ...G.Value) (G.Value, error) {
	h, err := vectorArg("Tower", in[0])
	if err != nil {
		return nil, err
	}
	B, D, u, err := matrixArg("Tower", in[1])
	if err != nil {
		return nil, err
	}
	vb, vd, v, err := matrixArg("Tower", in[2])
	if err != nil {
		return nil, err
	}
	b, err := vectorArg("Tower", in[3])
	if err != nil {
		return nil, err
	}
	if len(h) != B || vb != B || vd != D || len(b) != B {
		return nil, fmt.Errorf("Tower: head %d, u %d×%d, v %d×%d, bias %d", len(h), B, D, vb, vd, len(b))
	}
	t, z := op.out.get(B)
	for r := range B {
		z[r] = h[r] + f32.Dot(u[r*D:(r+1)*D], v[r*D:(r+1)*D]) + b[r]
	}
	return t, nil
}

func (*towerOp) DiffWRT(int) []bool { return []bool{true, true, true, true} }

// SymDiff: ∂h = ∂b = g, ∂u = g·v and ∂v = g·u row by row.
func (op *towerOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	du, err := G.ApplyOp(&rowScaleOp{}, grad, in[2])
	if err != nil {
		return nil, err
	}
	dv, err := G.ApplyOp(&rowScaleOp{}, grad, in[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{grad, du, dv, grad}, nil
}

// rowScaleOp is x with row r scaled by g[r]: inputs g (B), x (B×D).
type rowScaleOp struct {
	opBase
	out buf
}

func (*rowScaleOp) Arity() int               { return 2 }
func (*rowScaleOp) Type() hm.Type            { return hm.NewFnType(tyVec, tyMat, tyMat) }
func (*rowScaleOp) String() string           { return "RowScale" }
func (op *rowScaleOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *rowScaleOp) Hashcode() uint32      { return hashOf(op) }
func (op *rowScaleOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[1].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("RowScale: input shape %v", in[1])
	}
	return s.Clone(), nil
}

func (op *rowScaleOp) Do(in ...G.Value) (G.Value, error) {
	g, err := vectorArg("RowScale", in[0])
	if err != nil {
		return nil, err
	}
	B, D, x, err := matrixArg("RowScale", in[1])
	if err != nil {
		return nil, err
	}
	if len(g) != B {
		return nil, fmt.Errorf("RowScale: %d scales for %d rows", len(g), B)
	}
	t, y := op.out.get(B, D)
	clear(y)
	for r := range B {
		f32.AddScaled(y[r*D:(r+1)*D], g[r], x[r*D:(r+1)*D])
	}
	return t, nil
}

// lossOp is the batch's cost from the logits: with bce, inputs z, y, w and
// Σ w·(softplus(z) − y·z); with bpr, inputs z (positives), zn (negatives),
// w and Σ w·softplus(zn − z). Both are stable for any z, and their gradients
// come in one op (lossGradOp) instead of a chain of element-wise ones.
type lossOp struct {
	opBase
	bpr bool
	sum float64 // the cost of the last run, before rounding to float32
}

func (*lossOp) Arity() int    { return 3 }
func (*lossOp) Type() hm.Type { return hm.NewFnType(tyVec, tyVec, tyVec, tyA) }
func (op *lossOp) String() string {
	if op.bpr {
		return "LossBPR"
	}
	return "LossBCE"
}
func (op *lossOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *lossOp) Hashcode() uint32      { return hashOf(op) }
func (*lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func lossInputs(op string, in []G.Value) (z, y, w []float32, err error) {
	if z, err = vectorArg(op, in[0]); err != nil {
		return
	}
	if y, err = vectorArg(op, in[1]); err != nil {
		return
	}
	if w, err = vectorArg(op, in[2]); err != nil {
		return
	}
	if len(y) != len(z) || len(w) != len(z) {
		err = fmt.Errorf("%s: %d logits, %d, %d weights", op, len(z), len(y), len(w))
	}
	return
}

func (op *lossOp) Do(in ...G.Value) (G.Value, error) {
	z, y, w, err := lossInputs(op.String(), in)
	if err != nil {
		return nil, err
	}
	var c float64
	for r := range z {
		if op.bpr {
			c += float64(w[r]) * softplus(float64(y[r])-float64(z[r]))
		} else {
			c += float64(w[r]) * (softplus(float64(z[r])) - float64(y[r])*float64(z[r]))
		}
	}
	op.sum = c
	return G.NewF32(float32(c)), nil
}

func (op *lossOp) DiffWRT(int) []bool { return []bool{true, op.bpr, false} }

func (op *lossOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dz, err := G.ApplyOp(&lossGradOp{bpr: op.bpr}, in[0], in[1], in[2], grad)
	if err != nil {
		return nil, err
	}
	if !op.bpr {
		return G.Nodes{dz, nil, nil}, nil
	}
	dzn, err := G.ApplyOp(&lossGradOp{bpr: true, neg: true}, in[0], in[1], in[2], grad)
	return G.Nodes{dz, dzn, nil}, err
}

// lossGradOp is lossOp's gradient with respect to z (or, with neg, to zn),
// scaled by the incoming gradient g: inputs z, y or zn, w, g.
//   - bce: ∂/∂z = g·w·(σ(z) − y)
//   - bpr: ∂/∂z = −g·w·σ(zn − z), ∂/∂zn = +g·w·σ(zn − z)
type lossGradOp struct {
	opBase
	bpr, neg bool
	out      buf
}

func (*lossGradOp) Arity() int    { return 4 }
func (*lossGradOp) Type() hm.Type { return hm.NewFnType(tyVec, tyVec, tyVec, tyA, tyVec) }
func (op *lossGradOp) String() string {
	return fmt.Sprintf("LossGrad(bpr=%v,neg=%v)", op.bpr, op.neg)
}
func (op *lossGradOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *lossGradOp) Hashcode() uint32      { return hashOf(op) }
func (*lossGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	n, err := in[0].DimSize(0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{n}, nil
}

func (op *lossGradOp) Do(in ...G.Value) (G.Value, error) {
	z, y, w, err := lossInputs(op.String(), in[:3])
	if err != nil {
		return nil, err
	}
	g, err := scalarArg(op.String(), in[3])
	if err != nil {
		return nil, err
	}
	t, d := op.out.get(len(z))
	for r := range z {
		var v float64
		switch {
		case !op.bpr:
			v = sigmoid(float64(z[r])) - float64(y[r])
		case op.neg:
			v = sigmoid(float64(y[r]) - float64(z[r]))
		default:
			v = -sigmoid(float64(y[r]) - float64(z[r]))
		}
		d[r] = float32(float64(g) * float64(w[r]) * v)
	}
	return t, nil
}

// hadamardOp is u⊙v (both B×D) into a buffer kept across runs; its gradient
// is g⊙v and g⊙u, two more of these.
type hadamardOp struct {
	opBase
	out buf
}

func (*hadamardOp) Arity() int               { return 2 }
func (*hadamardOp) Type() hm.Type            { return hm.NewFnType(tyMat, tyMat, tyMat) }
func (*hadamardOp) String() string           { return "Hadamard" }
func (op *hadamardOp) WriteHash(h hash.Hash) { writeHash(h, op.String()) }
func (op *hadamardOp) Hashcode() uint32      { return hashOf(op) }
func (op *hadamardOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("Hadamard: input shape %v", in[0])
	}
	return s.Clone(), nil
}

func (op *hadamardOp) Do(in ...G.Value) (G.Value, error) {
	B, D, a, err := matrixArg("Hadamard", in[0])
	if err != nil {
		return nil, err
	}
	b2, d2, b, err := matrixArg("Hadamard", in[1])
	if err != nil {
		return nil, err
	}
	if b2 != B || d2 != D {
		return nil, fmt.Errorf("Hadamard: %d×%d and %d×%d", B, D, b2, d2)
	}
	t, y := op.out.get(B, D)
	f32.Mul(y, a, b)
	return t, nil
}

func (*hadamardOp) DiffWRT(int) []bool { return []bool{true, true} }

func (op *hadamardOp) SymDiff(in G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	du, err := G.ApplyOp(&hadamardOp{}, grad, in[1])
	if err != nil {
		return nil, err
	}
	dv, err := G.ApplyOp(&hadamardOp{}, grad, in[0])
	return G.Nodes{du, dv}, err
}
