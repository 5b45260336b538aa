package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/shelfml/shelf/internal/f32"
	"github.com/shelfml/shelf/model"
)

// The graphs' matrix products are Shelf ops on internal/f32 (ops.go); any
// float32 product Gorgonia runs itself also goes to f32's GEMM where the CPU
// has the kernels (several times gonum's pure-Go Sgemm; BenchmarkGemm).
func init() {
	if f32.HasAVX2FMA {
		G.Use(f32.BLAS{})
	}
}

// input is a graph input node bound once to a tensor over a Go slice; the
// training loop refills the slice before every run.
func input(g *G.ExprGraph, name string, data []float32, shape ...int) *G.Node {
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	if len(shape) == 1 {
		return G.NewVector(g, tensor.Float32, G.WithShape(shape...), G.WithName(name), G.WithValue(t))
	}
	return G.NewMatrix(g, tensor.Float32, G.WithShape(shape...), G.WithName(name), G.WithValue(t))
}

// readInto makes the VM copy n's value into dst (a Go slice of n's size) on
// every run.
func readInto(n *G.Node, dst []float32) {
	var v G.Value = tensor.New(tensor.WithShape(n.Shape().Clone()...), tensor.WithBacking(dst))
	G.Read(n, &v)
}

// mlpNodes are the graph nodes of a stack of model.Dense layers whose values
// alias the layers' W and B slices, so optimiser updates in Go are seen by the
// next run without rebinding. Layer 0's weight may be split by input rows
// (w[0] has one node per part, each aliasing its rows of W): x·W over the
// concatenation [x₀, x₁, …] is Σ xₚ·Wₚ, which spares the graph a Concat
// (an element-wise copy that cost as much as the matrix products).
type mlpNodes struct {
	w    [][]*G.Node // per layer, the weight's row blocks (one block except maybe layer 0)
	rows [][]int     // their row counts
	b    []*G.Node
}

// newMLPNodes binds layers; split, when given, is layer 0's input widths.
func newMLPNodes(g *G.ExprGraph, layers []model.Dense, split ...int) mlpNodes {
	var m mlpNodes
	for i, l := range layers {
		parts := []int{l.In}
		if i == 0 && len(split) > 0 {
			parts = split
		}
		var ws []*G.Node
		off := 0
		for p, r := range parts {
			name := fmt.Sprintf("mlp.%d.w", i)
			if len(parts) > 1 {
				name = fmt.Sprintf("mlp.%d.w.%d", i, p)
			}
			ws = append(ws, input(g, name, l.W[off*l.Out:(off+r)*l.Out], r, l.Out))
			off += r
		}
		if off != l.In {
			panic(fmt.Sprintf("mlp layer %d: split %v does not sum to %d inputs", i, parts, l.In))
		}
		m.w = append(m.w, ws)
		m.rows = append(m.rows, parts)
		m.b = append(m.b, input(g, fmt.Sprintf("mlp.%d.b", i), l.B, l.Out))
	}
	return m
}

// forward applies Dense, ReLU, …, Dense(→1) to the input blocks xs (rows ×
// layer 0's split widths) and returns the rows-long output vector. Each
// layer is one denseOp (see ops.go). masks, when given, multiply each hidden
// layer's activations (dropout with masks drawn in Go from the trainer's
// seeded RNG, so training stays reproducible).
func (m mlpNodes) forward(xs []*G.Node, masks []*G.Node) *G.Node {
	h := xs
	for i := range m.w {
		last := i == len(m.w)-1
		y := G.Must(dense(h, m.w[i], m.b[i], !last))
		if !last && masks != nil {
			y = G.Must(G.HadamardProd(y, masks[i]))
		}
		h = []*G.Node{y}
	}
	return G.Must(G.Reshape(h[0], tensor.Shape{xs[0].Shape()[0]}))
}

// params are the trainable nodes: per layer its weight blocks, then its bias.
func (m mlpNodes) params() []*G.Node {
	var ps []*G.Node
	for i := range m.w {
		ps = append(ps, m.w[i]...)
		ps = append(ps, m.b[i])
	}
	return ps
}

// outputs are the slices of g (one buffer per layer weight and bias) that
// params()' gradients are read into: a split weight's blocks land in their
// rows of the one buffer, so g keeps the model's layout.
func (m mlpNodes) outputs(g denseGrads) [][]float32 {
	var outs [][]float32
	for i := range m.w {
		out := len(g[2*i+1])
		off := 0
		for _, r := range m.rows[i] {
			outs = append(outs, g[2*i][off*out:(off+r)*out])
			off += r
		}
		outs = append(outs, g[2*i+1])
	}
	return outs
}

// denseGrads holds the gradient buffers of a layer stack, in params() order.
type denseGrads [][]float32

func newDenseGrads(layers []model.Dense) denseGrads {
	var g denseGrads
	for _, l := range layers {
		g = append(g, make([]float32, len(l.W)), make([]float32, len(l.B)))
	}
	return g
}

// rankGraph is the ranking model's per-batch graph for a fixed batch of B
// rows. For bce a row is (user, item, label); for bpr it is (user, positive,
// negative) and the label is unused.
type rankGraph struct {
	g   *G.ExprGraph
	vm  G.VM
	B   int
	D   int
	bpr bool

	// inputs, filled per batch
	u, v, vn    []float32   // B×D gathered rows (vn: bpr negatives)
	masks       [][]float32 // dropout: B×hidden[i] per hidden layer, 0 or 1/(1-p); nil = none
	bias, biasN []float32   // B gathered item biases
	y, w        []float32   // B labels (bce) and normalised sample weights

	// outputs, written by the VM on every run
	z                          []float32 // logits of the v rows
	gU, gV, gVn, gBias, gBiasN []float32
	gDense                     denseGrads
	touch                      float32 // keeps the gather's prefetching loads alive
	loss                       *lossOp // its sum is the batch's weighted loss after a run
}

// logitNode builds <U,V> + b + MLP([U, V, U⊙V]).
func logitNode(u, v, bias *G.Node, mlp mlpNodes, masks []*G.Node) *G.Node {
	uv := G.Must(G.ApplyOp(&hadamardOp{}, u, v))
	return G.Must(tower(mlp.forward([]*G.Node{u, v, uv}, masks), u, v, bias))
}

// newRankGraph builds the graph and its VM for batches of B rows over m's
// MLP layers (whose slices the graph aliases), with dropout mask inputs on
// the hidden layers when dropout is set. Close it when done.
func newRankGraph(m *model.RankingModel, B int, bpr, dropout bool) (rg *rankGraph, err error) {
	defer recoverErr(&err, "build ranking graph")
	D := m.Dim
	rg = &rankGraph{
		g: G.NewGraph(), B: B, D: D, bpr: bpr,
		u: make([]float32, B*D), v: make([]float32, B*D), bias: make([]float32, B),
		y: make([]float32, B), w: make([]float32, B),
		z: make([]float32, B), gU: make([]float32, B*D), gV: make([]float32, B*D), gBias: make([]float32, B),
		gDense: newDenseGrads(m.Layers),
	}
	g := rg.g
	mlp := newMLPNodes(g, m.Layers, D, D, D)
	u := input(g, "u", rg.u, B, D)
	v := input(g, "v", rg.v, B, D)
	b := input(g, "bias", rg.bias, B)
	w := input(g, "w", rg.w, B)
	var masks []*G.Node
	if dropout {
		for i, l := range m.Layers[:len(m.Layers)-1] {
			rg.masks = append(rg.masks, make([]float32, B*l.Out))
			masks = append(masks, input(g, fmt.Sprintf("dropout.%d", i), rg.masks[i], B, l.Out))
		}
	}
	z := logitNode(u, v, b, mlp, masks)
	readInto(z, rg.z)
	wrt := []*G.Node{u, v, b}
	outs := [][]float32{rg.gU, rg.gV, rg.gBias}
	var cost *G.Node
	if bpr {
		rg.vn, rg.biasN = make([]float32, B*D), make([]float32, B)
		rg.gVn, rg.gBiasN = make([]float32, B*D), make([]float32, B)
		vn := input(g, "vn", rg.vn, B, D)
		bn := input(g, "bias_n", rg.biasN, B)
		zn := logitNode(u, vn, bn, mlp, masks) // the same units dropped for the pair
		// −log σ(z⁺ − z⁻) = softplus(z⁻ − z⁺)
		rg.loss = &lossOp{bpr: true}
		cost = G.Must(G.ApplyOp(rg.loss, z, zn, w))
		wrt = append(wrt, vn, bn)
		outs = append(outs, rg.gVn, rg.gBiasN)
	} else {
		y := input(g, "y", rg.y, B)
		// BCE with logits: softplus(z) − y·z, stable for any z
		rg.loss = &lossOp{}
		cost = G.Must(G.ApplyOp(rg.loss, z, y, w))
	}
	wrt = append(wrt, mlp.params()...)
	outs = append(outs, mlp.outputs(rg.gDense)...)
	grads, err := G.Grad(cost, wrt...)
	if err != nil {
		return nil, fmt.Errorf("build ranking graph: gradients: %w", err)
	}
	for i, gn := range grads {
		readInto(gn, outs[i])
	}
	rg.vm = G.NewTapeMachine(g)
	return rg, nil
}

// run executes one forward/backward pass on the current inputs.
func (rg *rankGraph) run() error { return runVM(rg.vm, "ranking step") }

// runVM runs every node of a graph's tape machine once and resets it for
// the next run; what names the step in an error.
func runVM(vm G.VM, what string) (err error) {
	defer recoverErr(&err, what)
	err = vm.RunAll()
	vm.Reset()
	return err
}

// Close releases the VM.
func (rg *rankGraph) Close() error { return rg.vm.Close() }

// recoverErr turns a Gorgonia panic into an error; use as
// defer recoverErr(&err, "what was being done").
func recoverErr(err *error, what string) {
	if r := recover(); r != nil {
		if e, ok := r.(error); ok {
			*err = fmt.Errorf("%s: gorgonia: %w", what, e)
			return
		}
		*err = fmt.Errorf("%s: gorgonia: %v", what, r)
	}
}
