//go:build scratch

package nn

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestScratchTime(t *testing.T) {
	b := &testing.B{}
	_ = b
	rng := rand.New(rand.NewPCG(1, 1))
	d := RankingData{NUsers: 20000, NItems: 10000}
	for range 200000 {
		d.Positives = append(d.Positives, Positive{User: int32(rng.IntN(d.NUsers)), Item: int32(rng.IntN(d.NItems)), Weight: 1})
	}
	d.UserItems = NewSortedSets(d.NUsers, d.Positives)
	o := RankingOptions{Dim: 32, Hidden: []int{64, 64}, Epochs: 1, BatchSize: 512, Negatives: 4, LearningRate: 1e-3,
		L2: 1e-6, Loss: "bce", NegSampling: "popularity", NegAlpha: 0.75, Seed: 1}
	tr, _ := newRankTrainer(d, o)
	st, _ := newStepper(tr, tr.positivesPerBatch()*tr.groupRows(), 2)
	defer st.Close()
	perm := make([]int32, len(d.Positives))
	for i := range perm {
		perm[i] = int32(i)
	}
	P := tr.positivesPerBatch()
	r2 := rand.New(rand.NewPCG(2, 2))
	t0 := time.Now()
	const N = 3000
	for i := 0; i < N; i++ {
		lo := (i * P) % (len(perm) - P)
		st.step(perm[lo:lo+P], r2)
	}
	el := time.Since(t0)
	t.Logf("step %v", el/N)
}
