package nn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	G "gorgonia.org/gorgonia"

	"github.com/shelfml/shelf/internal/f32"
	"github.com/shelfml/shelf/model"
)

// MLPOptions are the purchase classifier's hyper-parameters.
type MLPOptions struct {
	Hidden           []int
	Epochs           int
	BatchSize        int
	LearningRate, L2 float64 // Adam step; L2 adds L2·W to the weight gradients
	Seed             int64
	Patience         int // epochs without validation improvement before stopping; 0 = never stop early
}

// TrainClassifier fits a binary MLP (Dense, ReLU, …, Dense→1, sigmoid) to the
// n×f row-major features X and labels y in [0, 1] with BCE and Adam. With
// validation data it keeps the epoch with the lowest validation log-loss
// (reported as EpochStats.Validation) and stops after Patience epochs without
// improvement. The result is engine-free; see PredictMLP.
func TrainClassifier(ctx context.Context, X []float32, y []float32, f int, o MLPOptions,
	validX []float32, validY []float32) (layers []model.Dense, hist []EpochStats, err error) {
	defer recoverErr(&err, "train classifier")
	if err := checkClassifier(X, y, f, o, validX, validY); err != nil {
		return nil, nil, err
	}
	n := len(y)
	B := min(o.BatchSize, n)
	layers = initDense(f, o.Hidden, rand.New(rand.NewPCG(uint64(o.Seed), initStream)))
	cg, err := newClassGraph(layers, B, f)
	if err != nil {
		return nil, nil, err
	}
	defer cg.Close()
	var params [][]float32
	for _, l := range layers {
		params = append(params, l.W, l.B)
	}
	mom := make([][2][]float32, len(params))
	for k, p := range params {
		mom[k] = [2][]float32{make([]float32, len(p)), make([]float32, len(p))}
	}
	var (
		best      []model.Dense
		bestLoss  = math.Inf(1)
		bad, step int
		perm      = make([]int, n)
	)
	for epoch := 0; epoch < o.Epochs; epoch++ {
		start := time.Now()
		for i := range perm {
			perm[i] = i
		}
		rng := rand.New(rand.NewPCG(uint64(o.Seed), uint64(2+epoch)))
		rng.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		var lossSum float64
		for lo := 0; lo < n; lo += B {
			if err := ctx.Err(); err != nil {
				return nil, hist, fmt.Errorf("train classifier: epoch %d: %w", epoch+1, err)
			}
			idx := perm[lo:min(lo+B, n)]
			rows := len(idx)
			for r := range B {
				if r >= rows {
					clear(cg.x[r*f : (r+1)*f])
					cg.y[r], cg.w[r] = 0, 0
					continue
				}
				copy(cg.x[r*f:(r+1)*f], X[idx[r]*f:(idx[r]+1)*f])
				cg.y[r], cg.w[r] = y[idx[r]], 1/float32(rows)
			}
			if err := cg.run(); err != nil {
				return nil, hist, fmt.Errorf("train classifier: epoch %d: %w", epoch+1, err)
			}
			lossSum += cg.loss.sum * float64(rows) // the loss op's Σ w·loss, w = 1/rows
			step++
			ss := adamRates(o.LearningRate, int64(step))
			for k, p := range params {
				g := cg.grads[k]
				if k%2 == 0 && o.L2 != 0 {
					f32.AddScaled(g, float32(o.L2), p)
				}
				adamUpdate(p, g, mom[k][0], mom[k][1], ss)
			}
		}
		s := EpochStats{Epoch: epoch + 1, Loss: lossSum / float64(n), Samples: n}
		if math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) {
			return nil, hist, fmt.Errorf("train classifier: epoch %d: loss %v: %w", s.Epoch, s.Loss, ErrDiverged)
		}
		stop := false
		if len(validY) > 0 {
			s.Validation = LogLoss(layers, validX, validY)
			if s.Validation < bestLoss {
				bestLoss, bad, best = s.Validation, 0, cloneLayers(layers)
			} else {
				bad++
				stop = o.Patience > 0 && bad >= o.Patience
			}
		}
		s.Seconds = time.Since(start).Seconds()
		hist = append(hist, s)
		if stop {
			break
		}
	}
	if best != nil {
		return best, hist, nil
	}
	return cloneLayers(layers), hist, nil
}

func checkClassifier(X, y []float32, f int, o MLPOptions, validX, validY []float32) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f <= 0 || len(y) == 0 || len(X) != len(y)*f {
		bad("features: %d values for %d rows of %d features", len(X), len(y), f)
	}
	if f > 0 && len(validX) != len(validY)*f {
		bad("validation features: %d values for %d rows of %d features", len(validX), len(validY), f)
	}
	for _, l := range [][]float32{y, validY} {
		for i, v := range l {
			if !(v >= 0 && v <= 1) {
				bad("label %d is %g, want within [0, 1]", i, v)
				break
			}
		}
	}
	for _, h := range o.Hidden {
		if h <= 0 {
			bad("hidden sizes %v must be > 0", o.Hidden)
			break
		}
	}
	if o.Epochs < 0 || o.BatchSize <= 0 || !(o.LearningRate > 0) || !(o.L2 >= 0) {
		bad("epochs %d, batch size %d, learning rate %g, l2 %g: want ≥ 0, > 0, > 0, ≥ 0", o.Epochs, o.BatchSize, o.LearningRate, o.L2)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("train classifier: options: %w", err)
	}
	return nil
}

// classGraph is the classifier's graph for a fixed batch of B rows.
type classGraph struct {
	vm      G.VM
	x, y, w []float32
	loss    *lossOp     // its sum is the batch's weighted loss after a run
	grads   [][]float32 // W0, B0, W1, B1, …
}

func newClassGraph(layers []model.Dense, B, f int) (cg *classGraph, err error) {
	defer recoverErr(&err, "build classifier graph")
	g := G.NewGraph()
	cg = &classGraph{x: make([]float32, B*f), y: make([]float32, B), w: make([]float32, B),
		grads: newDenseGrads(layers)}
	mlp := newMLPNodes(g, layers)
	x := input(g, "x", cg.x, B, f)
	y := input(g, "y", cg.y, B)
	w := input(g, "w", cg.w, B)
	z := mlp.forward([]*G.Node{x}, nil)
	cg.loss = &lossOp{}
	cost := G.Must(G.ApplyOp(cg.loss, z, y, w)) // Σ w·(softplus(z) − y·z)
	grads, err := G.Grad(cost, mlp.params()...)
	if err != nil {
		return nil, fmt.Errorf("build classifier graph: gradients: %w", err)
	}
	for i, gn := range grads {
		readInto(gn, cg.grads[i])
	}
	cg.vm = G.NewTapeMachine(g)
	return cg, nil
}

func (cg *classGraph) run() error { return runVM(cg.vm, "classifier step") }

func (cg *classGraph) Close() error { return cg.vm.Close() }

// PredictMLP returns P(y=1 | x) for one feature row: Dense, ReLU, …, Dense,
// sigmoid.
func PredictMLP(layers []model.Dense, x []float32) float32 {
	return float32(sigmoid(float64(mlpLogit(layers, x))))
}

func mlpLogit(layers []model.Dense, x []float32) float32 {
	cur := x
	for li, l := range layers {
		y := append([]float32(nil), l.B...)
		for k, xv := range cur[:l.In] {
			if xv != 0 {
				model.Axpy(xv, l.W[k*l.Out:(k+1)*l.Out], y)
			}
		}
		if li < len(layers)-1 {
			for o, v := range y {
				if v < 0 {
					y[o] = 0
				}
			}
		}
		cur = y
	}
	return cur[0]
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// LogLoss is the mean binary cross-entropy of the classifier on X (n×f) and y.
func LogLoss(layers []model.Dense, X, y []float32) float64 {
	if len(y) == 0 {
		return 0
	}
	f := len(X) / len(y)
	var s float64
	for i, yi := range y {
		z := float64(mlpLogit(layers, X[i*f:(i+1)*f]))
		s += softplus(z) - float64(yi)*z
	}
	return s / float64(len(y))
}
