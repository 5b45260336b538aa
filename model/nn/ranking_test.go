package nn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shelfml/shelf/model"
)

// plantedData: users in two groups, each liking one half of the items. Each
// user has 10 positives from their half, 2 of them held out.
func plantedData() (RankingData, [][2]int32) {
	const nUsers, nItems, perUser, heldOut = 60, 40, 10, 2
	rng := rand.New(rand.NewPCG(7, 7))
	d := RankingData{NUsers: nUsers, NItems: nItems}
	var test [][2]int32
	for u := range int32(nUsers) {
		half := (u % 2) * nItems / 2
		items := rng.Perm(nItems / 2)[:perUser]
		for k, i := range items {
			it := half + int32(i)
			if k < heldOut {
				test = append(test, [2]int32{u, it})
				continue
			}
			d.Positives = append(d.Positives, Positive{User: u, Item: it, Weight: float32(1 + k%3)})
		}
	}
	return d, test
}

// heldOutAUC is the share of (held-out positive, other-half item) pairs
// ranked in the right order.
func heldOutAUC(m *model.RankingModel, test [][2]int32) float64 {
	var s model.Scratch
	out := make([]float32, 1)
	var good, all float64
	for _, p := range test {
		m.Logits(p[0], []int32{p[1]}, out, &s)
		pos := out[0]
		other := ((p[0] + 1) % 2) * int32(m.NItems/2)
		for j := range int32(m.NItems / 2) {
			m.Logits(p[0], []int32{other + j}, out, &s)
			if pos > out[0] {
				good++
			}
			all++
		}
	}
	return good / all
}

func baseOptions(loss, sampling string) RankingOptions {
	return RankingOptions{Dim: 8, Hidden: []int{16, 16}, Epochs: 6, BatchSize: 64, Negatives: 3,
		LearningRate: 0.02, L2: 1e-5, Loss: loss, NegSampling: sampling, NegAlpha: 0.75, Seed: 42, Workers: 1}
}

func TestTrainRankingLearnsPlantedStructure(t *testing.T) {
	d, test := plantedData()
	for _, tc := range []struct {
		loss, sampling string
		workers        int
	}{
		{"bce", "uniform", 1}, {"bce", "popularity", 1}, {"bpr", "uniform", 1}, {"bpr", "popularity", 1}, {"bce", "popularity", 3},
	} {
		t.Run(fmt.Sprintf("%s/%s/workers=%d", tc.loss, tc.sampling, tc.workers), func(t *testing.T) {
			o := baseOptions(tc.loss, tc.sampling)
			o.Workers = tc.workers
			m, hist, err := TrainRanking(context.Background(), d, o, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 6 {
				t.Fatalf("%d epochs of stats, want 6", len(hist))
			}
			if first, last := hist[0].Loss, hist[len(hist)-1].Loss; !(last < first) {
				t.Errorf("loss did not decrease: %g → %g", first, last)
			}
			if auc := heldOutAUC(m, test); auc < 0.85 {
				t.Errorf("held-out AUC %.3f, want ≥ 0.85", auc)
			} else {
				t.Logf("held-out AUC %.3f, loss %.3f → %.3f", auc, hist[0].Loss, hist[len(hist)-1].Loss)
			}
		})
	}
}

func weightsBytes(t *testing.T, w *model.Weights) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := model.WriteWeights(&b, w); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTrainRankingDeterministic(t *testing.T) {
	d, _ := plantedData()
	for _, tc := range []struct {
		loss    string
		workers int
		dropout float64
	}{{"bce", 1, 0}, {"bpr", 1, 0}, {"bpr", 3, 0}, {"bce", 2, 0.3}} {
		t.Run(fmt.Sprintf("%s/workers=%d/dropout=%g", tc.loss, tc.workers, tc.dropout), func(t *testing.T) {
			o := baseOptions(tc.loss, "popularity")
			o.Epochs, o.Workers, o.Dropout = 2, tc.workers, tc.dropout
			var runs [][]byte
			for range 2 {
				m, _, err := TrainRanking(context.Background(), d, o, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, weightsBytes(t, m.ToWeights()))
			}
			if !bytes.Equal(runs[0], runs[1]) {
				t.Error("two runs with the same seed differ")
			}
			o.Seed++
			m, _, err := TrainRanking(context.Background(), d, o, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(runs[0], weightsBytes(t, m.ToWeights())) {
				t.Error("another seed gives the same weights")
			}
		})
	}
}

// TestTrainRankingWorkersDoNotChangeBits: the workers only schedule the
// shards' graphs, so any worker count gives the bits of one worker, while
// another shard count is another (equally valid) result.
func TestTrainRankingWorkersDoNotChangeBits(t *testing.T) {
	d, _ := plantedData()
	for _, loss := range []string{"bce", "bpr"} {
		t.Run(loss, func(t *testing.T) {
			o := baseOptions(loss, "popularity")
			o.Epochs, o.Shards, o.Dropout = 2, 3, 0.2
			var ref []byte
			for _, w := range []int{1, 2, 3, 8} {
				o.Workers = w
				m, _, err := TrainRanking(context.Background(), d, o, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				got := weightsBytes(t, m.ToWeights())
				if ref == nil {
					ref = got
				} else if !bytes.Equal(ref, got) {
					t.Errorf("workers=%d: weights differ from workers=1", w)
				}
			}
			o.Shards, o.Workers = 1, 1
			m, _, err := TrainRanking(context.Background(), d, o, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(ref, weightsBytes(t, m.ToWeights())) {
				t.Error("shards=1 gives the bits of shards=3: the shard split is not in effect")
			}
		})
	}
}

// stopAfter is a context whose Err turns to Canceled after n calls (the
// trainer checks once per batch), to interrupt a run at an exact batch.
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n <= 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

func TestTrainRankingResumeEqualsUninterrupted(t *testing.T) {
	d, test := plantedData()
	t.Run("plain", func(t *testing.T) { checkResume(t, d, test) })
	t.Run("side features", func(t *testing.T) { checkResume(t, withSide(d), test) })
}

// withSide gives plantedData's items their half as a "category" side
// feature, with a few items unknown.
func withSide(d RankingData) RankingData {
	f := SideFeature{Name: "category", Of: make([]int32, d.NItems), Values: 2}
	for i := range f.Of {
		f.Of[i] = int32(i / (d.NItems / 2))
		if i%7 == 3 {
			f.Of[i] = -1
		}
	}
	d.Side = []SideFeature{f}
	return d
}

func checkResume(t *testing.T, d RankingData, test [][2]int32) {
	o := baseOptions("bce", "popularity")
	o.Epochs, o.Patience = 8, 2
	validate := func(m *model.RankingModel) (float64, error) { return heldOutAUC(m, test), nil }

	var ckpts [][]byte
	o.OnCheckpoint = func(w *model.Weights) error {
		ckpts = append(ckpts, weightsBytes(t, w))
		return nil
	}
	full, fullHist, err := TrainRanking(context.Background(), d, o, validate, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := weightsBytes(t, full.ToWeights())
	bestVal := 0.0
	for _, s := range fullHist {
		bestVal = max(bestVal, s.Validation)
	}
	if len(fullHist) >= o.Epochs {
		t.Errorf("ran all %d epochs; this data should stop early with patience %d", o.Epochs, o.Patience)
	}
	if got := heldOutAUC(full, test); got != bestVal {
		t.Errorf("returned model scores %g, best epoch %g", got, bestVal)
	}
	if len(ckpts) != len(fullHist) {
		t.Fatalf("%d checkpoints for %d epochs", len(ckpts), len(fullHist))
	}
	P := max(1, o.BatchSize/(1+o.Negatives))
	batches := (len(d.Positives) + P - 1) / P

	cases := []struct {
		name string
		ckpt func(t *testing.T) []byte
	}{
		{"after epoch 2", func(*testing.T) []byte { return ckpts[1] }},
		{"inside epoch 2", func(t *testing.T) []byte {
			var last []byte
			o2 := o
			o2.OnCheckpoint = func(w *model.Weights) error { last = weightsBytes(t, w); return nil }
			_, _, err := TrainRanking(&stopAfter{Context: context.Background(), n: batches + batches/2}, d, o2, validate, nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: err %v, want context.Canceled", err)
			}
			return last
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ckpt := tc.ckpt(t)
			w, err := model.ReadWeights(bytes.NewReader(ckpt))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if !bytes.Equal(weightsBytes(t, w), ckpt) {
					t.Error("training modified the Resume weights")
				}
			}()
			o2 := o
			o2.OnCheckpoint = nil
			o2.Resume = w
			m, hist, err := TrainRanking(context.Background(), d, o2, validate, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(weightsBytes(t, m.ToWeights()), want) {
				t.Error("resumed weights differ from the uninterrupted run")
			}
			if len(hist) != len(fullHist) {
				t.Fatalf("%d epochs of history, want %d", len(hist), len(fullHist))
			}
			for i := range hist {
				if hist[i].Loss != fullHist[i].Loss || hist[i].Validation != fullHist[i].Validation {
					t.Errorf("epoch %d: %+v, want %+v", i+1, hist[i], fullHist[i])
				}
			}
		})
	}

	t.Run("other data refused", func(t *testing.T) {
		w, err := model.ReadWeights(bytes.NewReader(ckpts[0]))
		if err != nil {
			t.Fatal(err)
		}
		d2 := d
		d2.Positives = d.Positives[1:]
		o2 := o
		o2.OnCheckpoint, o2.Resume = nil, w
		if _, _, err := TrainRanking(context.Background(), d2, o2, nil, nil); err == nil {
			t.Error("resume into other data succeeded")
		}
	})
}

func TestTrainRankingCancelStopsBetweenBatches(t *testing.T) {
	d, _ := plantedData()
	o := baseOptions("bpr", "uniform")
	var got *Checkpoint
	o.OnCheckpoint = func(w *model.Weights) error {
		var err error
		got, err = CheckpointFromWeights(w)
		return err
	}
	_, _, err := TrainRanking(&stopAfter{Context: context.Background(), n: 3}, d, o, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if got == nil || got.Epoch != 0 || got.Batch != 3 || got.Step != 3 || got.RNG == nil {
		t.Fatalf("checkpoint at cancel: %+v, want epoch 0 batch 3 step 3 with RNG", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.OnCheckpoint = nil
	if _, _, err := TrainRanking(ctx, d, o, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err %v", err)
	}
}

func TestTrainRankingRejectsBadInput(t *testing.T) {
	d, _ := plantedData()
	for _, tc := range []struct {
		name string
		mod  func(*RankingData, *RankingOptions)
	}{
		{"loss", func(_ *RankingData, o *RankingOptions) { o.Loss = "mse" }},
		{"sampling", func(_ *RankingData, o *RankingOptions) { o.NegSampling = "" }},
		{"dim", func(_ *RankingData, o *RankingOptions) { o.Dim = 0 }},
		{"item range", func(d *RankingData, _ *RankingOptions) {
			d.Positives = append([]Positive{{User: 0, Item: int32(d.NItems), Weight: 1}}, d.Positives...)
		}},
		{"weight", func(d *RankingData, _ *RankingOptions) {
			d.Positives = append([]Positive{{User: 0, Item: 0, Weight: float32(math.NaN())}}, d.Positives...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d2, o := d, baseOptions("bce", "uniform")
			tc.mod(&d2, &o)
			if _, _, err := TrainRanking(context.Background(), d2, o, nil, nil); err == nil {
				t.Error("no error")
			}
		})
	}
}

// Items never seen in training (cold) are ranked by their side feature:
// users prefer the cold items of their own half only when the model knows
// each item's half as a category.
func TestSideFeaturesRankColdItems(t *testing.T) {
	d, _ := plantedData()
	cold := func(i int32) bool { return i%(int32(d.NItems)/2) >= 15 }
	var kept []Positive
	for _, p := range d.Positives {
		if !cold(p.Item) {
			kept = append(kept, p)
		}
	}
	d.Positives = kept
	coldAUC := func(m *model.RankingModel) float64 {
		var s model.Scratch
		out := make([]float32, 1)
		var good, all float64
		for u := range int32(d.NUsers) {
			own := (u % 2) * int32(d.NItems/2)
			other := int32(d.NItems/2) - own
			for a := int32(15); a < int32(d.NItems/2); a++ {
				m.Logits(u, []int32{own + a}, out, &s)
				pos := out[0]
				for b := int32(15); b < int32(d.NItems/2); b++ {
					m.Logits(u, []int32{other + b}, out, &s)
					if pos > out[0] {
						good++
					}
					all++
				}
			}
		}
		return good / all
	}
	o := baseOptions("bce", "uniform")
	o.Epochs = 10
	plain, _, err := TrainRanking(context.Background(), d, o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds := d
	f := SideFeature{Name: "category", Of: make([]int32, d.NItems), Values: 2}
	for i := range f.Of {
		f.Of[i] = int32(i / (d.NItems / 2))
	}
	ds.Side = []SideFeature{f}
	side, _, err := TrainRanking(context.Background(), ds, o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, q := coldAUC(plain), coldAUC(side)
	t.Logf("cold-item AUC: %.3f without side features, %.3f with", p, q)
	if q < 0.8 || q < p+0.2 {
		t.Errorf("cold-item AUC %.3f with the category feature, %.3f without: want ≥ 0.8 and a clear gain", q, p)
	}
	bad := ds
	bad.Side = []SideFeature{{Name: "category", Of: f.Of[:3], Values: 2}}
	if _, _, err := TrainRanking(context.Background(), bad, o, nil, nil); err == nil {
		t.Error("a side feature of the wrong length was accepted")
	}
}

// EpochPositives: each epoch trains on that many positives (a different
// seeded sample each epoch), reproducibly, and still learns.
func TestTrainRankingEpochPositives(t *testing.T) {
	d, test := plantedData()
	o := baseOptions("bce", "popularity")
	o.Epochs, o.EpochPositives = 12, 150
	var runs [][]byte
	for range 2 {
		m, hist, err := TrainRanking(context.Background(), d, o, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hist {
			if h.Samples != 150*(1+o.Negatives) {
				t.Fatalf("epoch %d trained on %d rows, want %d", h.Epoch, h.Samples, 150*(1+o.Negatives))
			}
		}
		if auc := heldOutAUC(m, test); auc < 0.8 {
			t.Errorf("held-out AUC %.3f with sampled epochs", auc)
		}
		runs = append(runs, weightsBytes(t, m.ToWeights()))
	}
	if !bytes.Equal(runs[0], runs[1]) {
		t.Error("two runs with the same seed differ")
	}
	o.EpochPositives = -1
	if _, _, err := TrainRanking(context.Background(), d, o, nil, nil); err == nil {
		t.Error("negative epoch positives accepted")
	}
}
