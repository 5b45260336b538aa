package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchTrainer sets up a trainer on random data: 20k users, 10k items, 200k positives.
func benchTrainer(b *testing.B, loss string, workers int) (*rankTrainer, *stepper, []int32) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	d := RankingData{NUsers: 20000, NItems: 10000}
	for range 200000 {
		d.Positives = append(d.Positives, Positive{User: int32(rng.IntN(d.NUsers)), Item: int32(rng.IntN(d.NItems)), Weight: 1})
	}
	d.UserItems = NewSortedSets(d.NUsers, d.Positives)
	o := RankingOptions{Dim: 32, Hidden: []int{64, 64}, Epochs: 1, BatchSize: 512, Negatives: 4, LearningRate: 1e-3,
		L2: 1e-6, Loss: loss, NegSampling: "popularity", NegAlpha: 0.75, Seed: 1}
	t, err := newRankTrainer(d, o)
	if err != nil {
		b.Fatal(err)
	}
	st, err := newStepper(t, t.positivesPerBatch()*t.groupRows(), workers, workers)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	perm := make([]int32, len(d.Positives))
	for i := range perm {
		perm[i] = int32(i)
	}
	return t, st, perm
}

// flopsPerRow estimates forward+backward FLOPs of one scored row: the MLP's
// matrix products (backward ≈ 2× forward) plus the dot product.
func flopsPerRow(dim int, hidden []int) float64 {
	in, f := 3*dim, 0.0
	for _, h := range append(append([]int(nil), hidden...), 1) {
		f += 2 * float64(in*h)
		in = h
	}
	return 3 * (f + 4*float64(dim))
}

// BenchmarkTrainStep measures one full training step (sampling, gather,
// Gorgonia forward/backward, sparse and dense Adam) at batch 512, dim 32,
// hidden 64,64.
func BenchmarkTrainStep(b *testing.B) {
	for _, tc := range []struct {
		loss    string
		workers int
	}{{"bce", 1}, {"bpr", 1}, {"bce", 2}, {"bce", 4}} {
		loss := tc.loss
		b.Run(fmt.Sprintf("%s/workers=%d", loss, tc.workers), func(b *testing.B) {
			t, st, perm := benchTrainer(b, loss, tc.workers)
			P := t.positivesPerBatch()
			rng := rand.New(rand.NewPCG(2, 2))
			rows0 := t.samples
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lo := (i * P) % (len(perm) - P)
				if err := st.step(perm[lo:lo+P], rng); err != nil {
					b.Fatal(err)
				}
			}
			rows := float64(t.samples - rows0)
			sec := b.Elapsed().Seconds()
			logits := 1.0
			if loss == "bpr" {
				logits = 2
			}
			b.ReportMetric(rows/sec, "samples/s")
			b.ReportMetric(rows*logits*flopsPerRow(32, []int{64, 64})/sec/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGraphRun isolates Gorgonia's forward/backward pass of one batch.
func BenchmarkGraphRun(b *testing.B) {
	_, st, perm := benchTrainer(b, "bce", 1)
	// one real step fills the inputs (gonum skips zero multipliers)
	if err := st.step(perm[:st.bw/5], rand.New(rand.NewPCG(2, 2))); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.graphs[0].run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.bw*b.N)/b.Elapsed().Seconds(), "samples/s")
}
