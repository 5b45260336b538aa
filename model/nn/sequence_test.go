package nn

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shelfml/shelf/model"
)

// plantedSequences: each item has a successor; a user's next item is its
// previous item's successor with probability follow, else a popular-skewed
// random item. Returns the sequences (the last event held out) and the
// held-out items.
func plantedSequences(seed uint64, users, items int, follow float64) ([]Sequence, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	succ := rng.Perm(items)
	var seqs []Sequence
	var held []int32
	for range users {
		n := 6 + rng.IntN(10)
		it := []int32{int32(rng.IntN(items))}
		for len(it) < n {
			if rng.Float64() < follow {
				it = append(it, int32(succ[it[len(it)-1]]))
			} else {
				it = append(it, int32(rng.IntN(items)*rng.IntN(items)/items)) // skewed to small ids
			}
		}
		types := make([]uint8, n)
		for i := range types {
			types[i] = uint8(rng.IntN(2))
		}
		seqs = append(seqs, Sequence{Items: it[:n-1], Types: types[:n-1]})
		held = append(held, it[n-1])
	}
	return seqs, held
}

// hitRate is the share of users whose held-out item is in the top k by
// score (their own history excluded).
func hitRate(seqs []Sequence, held []int32, items, k int, score func(u int, item int32) float32) float64 {
	hits := 0
	for u, s := range seqs {
		target := score(u, held[u])
		if slices.Contains(s.Items, held[u]) {
			continue // counted as a miss: excluded from the list
		}
		better := 0
		for i := range int32(items) {
			if i != held[u] && !slices.Contains(s.Items, i) && score(u, i) > target {
				better++
			}
		}
		if better < k {
			hits++
		}
	}
	return float64(hits) / float64(len(seqs))
}

// TestSequenceLearnsOrder trains the encoder on sequences with a planted
// successor and checks it ranks the held-out next item far better than
// popularity does, with validation stopping it early, and that the same
// seed gives the same model.
func TestSequenceLearnsOrder(t *testing.T) {
	const items = 150
	seqs, held := plantedSequences(7, 800, items, 0.7)
	o := SeqOptions{Dim: 32, MaxLen: 12, Heads: 2, Blocks: 1, Epochs: 30, BatchSize: 64, LearningRate: 0.005, Dropout: 0.1, Patience: 3, Seed: 1}
	train := func(workers int) (*SeqTrainer, float64, int) {
		ow := o
		ow.Workers = workers
		tr, err := NewSeqTrainer(items, 2, ow)
		if err != nil {
			t.Fatal(err)
		}
		// Validation: each training sequence's last event predicted from the rest.
		var vs []Sequence
		var vh []int32
		for _, s := range seqs[:200] {
			vs = append(vs, Sequence{Items: s.Items[:len(s.Items)-1], Types: s.Types[:len(s.Types)-1]})
			vh = append(vh, s.Items[len(s.Items)-1])
		}
		tr.o.Validate = func(m *SeqTrainer, epoch int) (float64, error) {
			st, err := m.States(vs)
			if err != nil {
				return 0, err
			}
			return hitRate(vs, vh, items, 10, func(u int, i int32) float32 { return m.Score(st[u*o.Dim:(u+1)*o.Dim], i) }), nil
		}
		best, epochs, err := tr.Train(context.Background(), seqs)
		if err != nil {
			t.Fatal(err)
		}
		return tr, best, epochs
	}
	tr, best, epochs := train(1)
	defer tr.Close()
	st, err := tr.States(seqs)
	if err != nil {
		t.Fatal(err)
	}
	model := hitRate(seqs, held, items, 10, func(u int, i int32) float32 { return tr.Score(st[u*o.Dim:(u+1)*o.Dim], i) })
	counts := make([]float32, items)
	for _, s := range seqs {
		for _, i := range s.Items {
			counts[i]++
		}
	}
	pop := hitRate(seqs, held, items, 10, func(_ int, i int32) float32 { return counts[i] })
	t.Logf("HR@10 of the held-out next item: encoder %.3f (validation %.3f, %d epochs), popularity %.3f", model, best, epochs, pop)
	if model < 2*pop || model < 0.4 {
		t.Fatalf("the encoder did not learn the planted order: HR@10 %.3f vs popularity %.3f", model, pop)
	}
	// Two workers run the batch's two shards at once: the same bits.
	tr2, _, _ := train(2)
	defer tr2.Close()
	if !slices.Equal(tr.E, tr2.E) || !slices.Equal(tr.enc.blocks[0].wq, tr2.enc.blocks[0].wq) {
		t.Fatal("the same seed and shards gave another model on two workers")
	}
}

// BenchmarkSeqTrainEpoch is one epoch of the encoder (D 32, 50 positions,
// one block, two heads) over 1,000 users with 30–60 events each: positions
// (next-item predictions) per second.
func BenchmarkSeqTrainEpoch(b *testing.B) {
	const items = 2000
	rng := rand.New(rand.NewPCG(9, 9))
	var seqs []Sequence
	positions := 0
	for range 1000 {
		n := 30 + rng.IntN(31)
		s := Sequence{Items: make([]int32, n), Types: make([]uint8, n)}
		for i := range s.Items {
			s.Items[i] = int32(rng.IntN(items))
		}
		seqs = append(seqs, s)
		positions += min(n-1, 50)
	}
	tr, err := NewSeqTrainer(items, 1, SeqOptions{Dim: 32, MaxLen: 50, Heads: 2, Blocks: 1, Epochs: 1, BatchSize: 128, LearningRate: 0.001, Seed: 1, Workers: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	b.ResetTimer()
	for range b.N {
		if _, _, err := tr.Train(context.Background(), seqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(positions*b.N)/b.Elapsed().Seconds(), "positions/s")
}

func TestGapBuckets(t *testing.T) {
	for _, c := range []struct {
		sec  int64
		want uint8
	}{{-1, 0}, {0, 1}, {59, 1}, {60, 2}, {180, 3}, {3600, 6}, {86400, 11}, {365 * 86400, GapBuckets - 1}} {
		if got := GapBucket(c.sec); got != c.want {
			t.Errorf("GapBucket(%d) = %d, want %d", c.sec, got, c.want)
		}
	}
	// The same items and types with other gaps give another state.
	tr, err := NewSeqTrainer(10, 1, SeqOptions{Dim: 8, MaxLen: 4, Heads: 2, Blocks: 1, Epochs: 1, BatchSize: 2, LearningRate: 0.01, Seed: 1, TimeGaps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	s := Sequence{Items: []int32{1, 2, 3}, Types: []uint8{0, 0, 0}}
	a, b := s, s
	a.Gaps, b.Gaps = []uint8{0, 1, 1}, []uint8{0, 1, 12}
	st, err := tr.States([]Sequence{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(st[:8], st[8:]) {
		t.Fatal("the time gaps do not reach the state")
	}
	if _, _, err := tr.Train(context.Background(), []Sequence{{Items: []int32{1, 2}, Types: []uint8{0, 0}, Gaps: []uint8{0, GapBuckets}}}); err == nil {
		t.Fatal("a gap bucket out of range was accepted")
	}
}

// TestSequenceWeightsRoundTrip: an encoder written to a weights file and
// read back computes the same states, bit for bit, at another batch size.
func TestSequenceWeightsRoundTrip(t *testing.T) {
	tr, err := NewSeqTrainer(30, 3, SeqOptions{Dim: 8, MaxLen: 6, Heads: 2, Blocks: 2, Epochs: 2, BatchSize: 4, LearningRate: 0.01, Dropout: 0.1, Seed: 3, TimeGaps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var seqs []Sequence
	for u := range 9 {
		var s Sequence
		for j := range 2 + u {
			s.Items = append(s.Items, int32((u*7+j*3)%30))
			s.Types = append(s.Types, uint8(j%3))
			s.Gaps = append(s.Gaps, uint8(j%GapBuckets))
		}
		seqs = append(seqs, s)
	}
	if _, _, err := tr.Train(context.Background(), seqs); err != nil {
		t.Fatal(err)
	}
	want, err := tr.States(seqs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := model.WriteWeights(&buf, tr.ToWeights()); err != nil {
		t.Fatal(err)
	}
	w, err := model.ReadWeights(&buf)
	if err != nil {
		t.Fatal(err)
	}
	back, err := SeqFromWeights(w, 3, 2) // States on two workers: the same bits
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	got, err := back.States(seqs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("states after the round trip differ:\n%v\n%v", got[:8], want[:8])
	}
	w.Tensors = w.Tensors[1:] // drop one tensor
	if _, err := SeqFromWeights(w, 3, 1); err == nil {
		t.Fatal("incomplete weights were accepted")
	}
}

// TestShortWindowsMatchFullWindow: a sequence's state on the smallest
// window that holds it is its state on the full window (the padding that
// the shorter window leaves out is masked there).
func TestShortWindowsMatchFullWindow(t *testing.T) {
	tr, err := NewSeqTrainer(40, 2, SeqOptions{Dim: 8, MaxLen: 20, Heads: 2, Blocks: 2, Epochs: 1, BatchSize: 3, LearningRate: 0.01, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := tr.windows(); !slices.Equal(got, []int{8, 16, 20}) {
		t.Fatalf("windows %v", got)
	}
	var seqs []Sequence
	for u, n := range []int{1, 3, 7, 8, 9, 15, 20, 25} {
		s := Sequence{}
		for j := range n {
			s.Items = append(s.Items, int32((u*11+j*5)%40))
			s.Types = append(s.Types, uint8(j%2))
		}
		seqs = append(seqs, s)
	}
	got, err := tr.States(seqs)
	if err != nil {
		t.Fatal(err)
	}
	fulls, err := tr.graphs(20, false)
	if err != nil {
		t.Fatal(err)
	}
	full := fulls[0]
	for i, s := range seqs {
		tr.fillInto(full, 0, s, nil)
		for b := 1; b < 3; b++ {
			tr.fillInto(full, b, Sequence{}, nil)
		}
		if err := full.run(); err != nil {
			t.Fatal(err)
		}
		want := full.h[19*8 : 20*8]
		for j := range want {
			if d := math.Abs(float64(got[i*8+j] - want[j])); d > 1e-5 {
				t.Fatalf("sequence %d (%d events): state[%d] %g on its window, %g on the full one", i, len(s.Items), j, got[i*8+j], want[j])
			}
		}
	}
}
