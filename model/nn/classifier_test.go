package nn

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// quadrants: y = 1 when x0·x1 > 0 (not linearly separable), plus a noise feature.
func quadrants(n int, seed uint64) ([]float32, []float32) {
	rng := rand.New(rand.NewPCG(seed, 0))
	X, y := make([]float32, 0, 3*n), make([]float32, 0, n)
	for range n {
		a, b := rng.Float64()*2-1, rng.Float64()*2-1
		X = append(X, float32(a), float32(b), float32(rng.NormFloat64()))
		if a*b > 0 {
			y = append(y, 1)
		} else {
			y = append(y, 0)
		}
	}
	return X, y
}

func TestTrainClassifierLearnsSeparableProblem(t *testing.T) {
	X, y := quadrants(2000, 1)
	vX, vy := quadrants(500, 2)
	o := MLPOptions{Hidden: []int{16, 16}, Epochs: 30, BatchSize: 64, LearningRate: 0.01, L2: 1e-5, Seed: 3, Patience: 5}
	layers, hist, err := TrainClassifier(context.Background(), X, y, 3, o, vX, vy)
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i, yi := range vy {
		if p := PredictMLP(layers, vX[3*i:3*i+3]); (p > 0.5) == (yi == 1) {
			correct++
		}
	}
	acc := float64(correct) / float64(len(vy))
	if acc < 0.9 {
		t.Errorf("validation accuracy %.3f, want ≥ 0.9", acc)
	}
	best := slices.MinFunc(hist, func(a, b EpochStats) int { return cmpF(a.Validation, b.Validation) }).Validation
	if got := LogLoss(layers, vX, vy); math.Abs(got-best) > 1e-12 {
		t.Errorf("returned layers have log-loss %g, best epoch %g", got, best)
	}
	t.Logf("accuracy %.3f after %d epochs, log-loss %.3f", acc, len(hist), best)

	again, _, err := TrainClassifier(context.Background(), X, y, 3, o, vX, vy)
	if err != nil {
		t.Fatal(err)
	}
	for i := range layers {
		if !slices.Equal(layers[i].W, again[i].W) || !slices.Equal(layers[i].B, again[i].B) {
			t.Fatal("two runs with the same seed differ")
		}
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestTrainClassifierErrors(t *testing.T) {
	X, y := quadrants(100, 1)
	o := MLPOptions{Hidden: []int{4}, Epochs: 3, BatchSize: 16, LearningRate: 0.01}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := TrainClassifier(ctx, X, y, 3, o, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
	for _, tc := range []struct {
		name string
		X, y []float32
		f    int
	}{
		{"shape", X[:len(X)-1], y, 3},
		{"label", X, append(slices.Clone(y[:len(y)-1]), 2), 3},
		{"features", X, y, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := TrainClassifier(context.Background(), tc.X, tc.y, tc.f, o, nil, nil); err == nil {
				t.Error("no error")
			}
		})
	}
}
