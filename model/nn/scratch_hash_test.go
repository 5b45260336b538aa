//go:build scratch

package nn

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"testing"
)

func TestScratchHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	d := RankingData{NUsers: 2000, NItems: 1000}
	for range 20000 {
		d.Positives = append(d.Positives, Positive{User: int32(rng.IntN(d.NUsers)), Item: int32(rng.IntN(d.NItems)), Weight: 1})
	}
	d.UserItems = NewSortedSets(d.NUsers, d.Positives)
	o := RankingOptions{Dim: 32, Hidden: []int{64, 64}, Epochs: 2, BatchSize: 512, Negatives: 4, LearningRate: 1e-3,
		L2: 1e-6, Loss: "bce", NegSampling: "popularity", NegAlpha: 0.75, Seed: 1, Workers: 2}
	m, _, err := TrainRanking(context.Background(), d, o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := fnv.New64a()
	for _, tn := range m.ToWeights().Tensors {
		for _, v := range tn.Data {
			b := math.Float32bits(v)
			h.Write([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
		}
	}
	t.Logf("hash %x", h.Sum64())
}
