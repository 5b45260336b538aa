package nn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/shelfml/shelf/internal/f32"
	"github.com/shelfml/shelf/model"
)

// Sequence is one user's events in time order: local item indices,
// event-type indices (0 ≤ type < the trainer's type count) and, optionally,
// each event's gap bucket (GapBucket of the seconds since the user's
// previous event; nil = no gap information, every event bucket 0).
type Sequence struct {
	Items []int32
	Types []uint8
	Gaps  []uint8
}

// GapBuckets is the number of time-gap embeddings.
const GapBuckets = 16

// GapBucket maps the seconds since the previous event to a bucket: 0 for a
// first event (seconds < 0), else 1 + ⌊log₂(1 + minutes)⌋, at most
// GapBuckets−1 (about three weeks and more share the last).
func GapBucket(seconds int64) uint8 {
	if seconds < 0 {
		return 0
	}
	b := 1 + int(math.Log2(1+float64(seconds)/60))
	return uint8(min(b, GapBuckets-1))
}

// SeqOptions configure TrainSequence.
type SeqOptions struct {
	Dim, MaxLen, Heads, Blocks int
	Epochs, BatchSize          int
	LearningRate, L2, Dropout  float64 // Dropout: on the input embeddings
	Patience                   int     // epochs without a better validation score before stopping
	// EpochSequences caps the sequences one epoch trains on (a fresh
	// seeded sample each epoch); 0 = all.
	EpochSequences int
	// Negatives > 0: the loss is a softmax over the next item and that many
	// negatives shared by each batch (uniform); 0: BCE with one uniform
	// negative per position (SASRec).
	Negatives int
	// TimeGaps adds each event's gap-bucket embedding to its input (off:
	// every event gets bucket 0's, and Sequence.Gaps is ignored).
	TimeGaps bool
	Seed     uint64
	// Shards splits each training batch into that many equal shares, each
	// run through its own graph, their gradients summed in shard order
	// (0 = DefaultShards). Part of the result: the same Shards gives the
	// same bits whatever Workers is.
	Shards int
	// Workers is how many goroutines run the shards' graphs in training and
	// the batches of States (≤ 1: one after another). It changes the speed,
	// never the result.
	Workers int
	// Validate scores the encoder after an epoch (higher is better); nil =
	// every epoch runs and the last is kept.
	Validate func(m *SeqTrainer, epoch int) (float64, error)
}

// SeqTrainer holds a sequence encoder being trained: the item, position and
// type embeddings (outside the graph), the graph's dense parameters and
// their optimiser state.
type SeqTrainer struct {
	o      SeqOptions
	nItems int
	E      []float32 // nItems × D, input and output item embeddings (shared)
	P      []float32 // MaxLen × D positions (0 = the oldest slot of the window)
	T      []float32 // types × D
	Gp     []float32 // GapBuckets × D time-gap embeddings
	enc    *seqEncoder
	fwd    map[int][]*seqGraph // forward only, for States, by window: one per worker (built on first use)
	train  map[int][]*seqGraph // training graphs by window: one per shard (built on first use)
	rng    *rand.Rand

	mE, vE, mP, vP, mT, vT []float32
	mG, vG                 []float32
	mD, vD                 [][]float32
	step                   int64
	gE, gP, gT, gG         *sparseGrad
}

// NewSeqTrainer initialises the embeddings (N(0, 1/√D)) and blocks.
func NewSeqTrainer(nItems, nTypes int, o SeqOptions) (*SeqTrainer, error) {
	switch {
	case nItems < 2 || nTypes < 1:
		return nil, fmt.Errorf("sequence: need 2+ items and 1+ event types, have %d and %d", nItems, nTypes)
	case o.Dim < 1 || o.Heads < 1 || o.Dim%o.Heads != 0:
		return nil, fmt.Errorf("sequence: dim %d must be a positive multiple of heads %d", o.Dim, o.Heads)
	case o.Negatives < 0 || o.Negatives > 0 && nItems > 1<<24:
		return nil, fmt.Errorf("sequence: %d negatives over %d items (a sampled softmax takes at most 2^24 items)", o.Negatives, nItems)
	case o.MaxLen < 2 || o.Blocks < 1 || o.BatchSize < 1 || o.Epochs < 1:
		return nil, fmt.Errorf("sequence: max_len %d, blocks %d, batch %d, epochs %d", o.MaxLen, o.Blocks, o.BatchSize, o.Epochs)
	case !(o.LearningRate > 0) || math.IsInf(o.LearningRate, 0) || o.L2 < 0 || !(o.Dropout >= 0 && o.Dropout < 1):
		return nil, fmt.Errorf("sequence: learning rate %v, l2 %v, dropout %v", o.LearningRate, o.L2, o.Dropout)
	}
	D := o.Dim
	rng := rand.New(rand.NewPCG(o.Seed, 0x5e9))
	normal := func(n int, scale float64) []float32 { return normals(rng, n, scale, 0) }
	ones := func(n int) []float32 { return normals(rng, n, 0, 1) }
	sc := 1 / math.Sqrt(float64(D))
	t := &SeqTrainer{o: o, nItems: nItems, rng: rng,
		E: normal(nItems*D, sc), P: normal(o.MaxLen*D, sc), T: normal(nTypes*D, sc), Gp: normal(GapBuckets*D, sc)}
	t.enc = &seqEncoder{D: D, L: o.MaxLen, heads: o.Heads, lnfg: ones(D), lnfb: make([]float32, D)}
	for range o.Blocks {
		t.enc.blocks = append(t.enc.blocks, seqBlock{
			ln1g: ones(D), ln1b: make([]float32, D), wq: normal(D*D, sc), wk: normal(D*D, sc), wv: normal(D*D, sc),
			bq: make([]float32, D), bv: make([]float32, D), ln2g: ones(D), ln2b: make([]float32, D),
			w1: normal(D*D, sc), w2: normal(D*D, sc), b1: make([]float32, D), b2: make([]float32, D)})
	}
	t.mE, t.vE = make([]float32, len(t.E)), make([]float32, len(t.E))
	t.mP, t.vP = make([]float32, len(t.P)), make([]float32, len(t.P))
	t.mT, t.vT = make([]float32, len(t.T)), make([]float32, len(t.T))
	t.mG, t.vG = make([]float32, len(t.Gp)), make([]float32, len(t.Gp))
	for _, p := range t.enc.params() {
		t.mD, t.vD = append(t.mD, make([]float32, len(p))), append(t.vD, make([]float32, len(p)))
	}
	t.gE, t.gP, t.gT, t.gG = newSparseGrad(nItems, D), newSparseGrad(o.MaxLen, D), newSparseGrad(nTypes, D), newSparseGrad(GapBuckets, D)
	return t, nil
}

// Close releases the graphs.
func (t *SeqTrainer) Close() error {
	var errs []error
	for _, m := range []map[int][]*seqGraph{t.fwd, t.train} {
		for _, gs := range m {
			for _, g := range gs {
				errs = append(errs, g.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// windows are the graph windows a batch may run on: 8, 16, 32, … below
// MaxLen, and MaxLen. A batch runs on the smallest that holds its longest
// sequence, so a log of short histories does not pay for MaxLen positions.
func (t *SeqTrainer) windows() []int {
	var ws []int
	for l := 8; l < t.o.MaxLen; l *= 2 {
		ws = append(ws, l)
	}
	return append(ws, t.o.MaxLen)
}

// shards is the training batch split (DefaultShards when unset, as the
// ranking model's), at most one share per sequence.
func (t *SeqTrainer) shards() int {
	n := t.o.Shards
	if n <= 0 {
		n = DefaultShards
	}
	return max(1, min(n, t.o.BatchSize))
}

func (t *SeqTrainer) workers() int { return max(1, t.o.Workers) }

// window returns the smallest graph window holding n positions.
func (t *SeqTrainer) windowFor(n int) int {
	for _, l := range t.windows() {
		if n <= l {
			return l
		}
	}
	return t.o.MaxLen
}

// graphs are window l's training graphs (one per shard, each for a
// share of the batch) or, without train, its forward-only graphs (one per
// worker, each for a whole batch).
func (t *SeqTrainer) graphs(l int, train bool) ([]*seqGraph, error) {
	m, n, b := &t.fwd, t.workers(), t.o.BatchSize
	if train {
		m, n = &t.train, t.shards()
		b = (t.o.BatchSize + n - 1) / n
	}
	if *m == nil {
		*m = map[int][]*seqGraph{}
	}
	if gs := (*m)[l]; gs != nil {
		return gs, nil
	}
	var gs []*seqGraph
	for range n {
		g, err := buildSeqGraph(t.enc, b, l, t.o.Negatives, train)
		if err != nil {
			for _, g := range gs {
				g.Close()
			}
			return nil, err
		}
		gs = append(gs, g)
	}
	(*m)[l] = gs
	return gs, nil
}

// runGraphs runs every graph of gs once, worker w taking graphs w,
// w+workers, … (worker 0 on this goroutine). Each graph's results land in
// its own buffers, so the schedule changes no bit.
func (t *SeqTrainer) runGraphs(gs []*seqGraph, each func(k int, g *seqGraph) error) error {
	errs := make([]error, len(gs))
	work := func(w, workers int) {
		for k := w; k < len(gs); k += workers {
			errs[k] = each(k, gs[k])
		}
	}
	workers := min(t.workers(), len(gs))
	if workers <= 1 {
		work(0, 1)
		return errors.Join(errs...)
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w, workers)
		}()
	}
	work(0, workers)
	wg.Wait()
	return errors.Join(errs...)
}

// window is the part of s that fits: its last MaxLen+1 events for training
// (inputs and their next items), its last MaxLen for a state.
func (t *SeqTrainer) window(s Sequence, n int) ([]int32, []uint8, []uint8) {
	lo := max(0, len(s.Items)-n)
	var gaps []uint8
	if s.Gaps != nil {
		gaps = s.Gaps[lo:]
	}
	return s.Items[lo:], s.Types[lo:], gaps
}

// rows records, per graph row of a batch, what the gradients scatter to:
// the input item (-1 for padding) and type, the next item and the negative.
type rows struct {
	items, next, neg []int32
	types, gaps      []uint8
}

func newRows(n int) *rows {
	return &rows{items: make([]int32, n), next: make([]int32, n), neg: make([]int32, n), types: make([]uint8, n), gaps: make([]uint8, n)}
}

// fillInto loads sequence s into row block b of graph sg's inputs: the
// window right-aligned (left padding), inputs X = E[item] + P[slot] +
// T[type] + Gp[gap] (slots counted in the full MaxLen window, so a shorter
// graph's rows get the embeddings they would get in the full one); with
// rec (training), each position's next item and, for BCE, a uniform
// negative. It returns the number of target positions.
func (t *SeqTrainer) fillInto(sg *seqGraph, b int, s Sequence, rec *rows) int {
	targets := rec != nil
	D, L := t.o.Dim, sg.L
	base := b * L
	for r := base; r < base+L; r++ {
		sg.valid[r], sg.w[r] = 0, 0
		clear(sg.x[r*D : (r+1)*D])
		if rec != nil {
			rec.items[r] = -1
		}
	}
	if len(s.Items) == 0 {
		return 0
	}
	n := L
	if targets {
		n = L + 1
	}
	items, types, gaps := t.window(s, n)
	in := len(items)
	if targets {
		in--
	}
	count := 0
	for i := range in {
		slot := t.o.MaxLen - in + i // the position embedding: slots of the full window
		r := base + L - in + i
		x := sg.x[r*D : (r+1)*D]
		gap := uint8(0)
		if gaps != nil && t.o.TimeGaps {
			gap = gaps[i]
		}
		e, p, ty, gp := t.E[int(items[i])*D:], t.P[slot*D:], t.T[int(types[i])*D:], t.Gp[int(gap)*D:]
		for j := range D {
			x[j] = e[j] + p[j] + ty[j] + gp[j]
		}
		sg.valid[r] = 1
		if targets {
			next := items[i+1]
			rec.items[r], rec.types[r], rec.gaps[r], rec.next[r], rec.neg[r] = items[i], types[i], gap, next, -1
			copy(sg.pos[r*D:(r+1)*D], t.E[int(next)*D:int(next+1)*D])
			if sg.K == 0 {
				neg := int32(t.rng.IntN(t.nItems - 1))
				if neg >= next {
					neg++
				}
				rec.neg[r] = neg
				copy(sg.neg[r*D:(r+1)*D], t.E[int(neg)*D:int(neg+1)*D])
			}
			sg.next[r] = float32(next)
			sg.w[r] = 1
			count++
		}
	}
	return count
}

// Train runs the epochs on seqs (each with 2+ events to teach anything),
// keeping the parameters of the best validation epoch. It returns the best
// validation score and that epoch (without Validate: -Inf and the epochs run).
func (t *SeqTrainer) Train(ctx context.Context, seqs []Sequence) (best float64, epochs int, err error) {
	o := t.o
	D, L, B := o.Dim, o.MaxLen, o.BatchSize
	var train []int
	for i, s := range seqs {
		if len(s.Items) != len(s.Types) || s.Gaps != nil && len(s.Gaps) != len(s.Items) {
			return 0, 0, fmt.Errorf("sequence %d: %d items, %d types, %d gaps", i, len(s.Items), len(s.Types), len(s.Gaps))
		}
		for _, g := range s.Gaps {
			if g >= GapBuckets {
				return 0, 0, fmt.Errorf("sequence %d: gap bucket %d outside [0, %d)", i, g, GapBuckets)
			}
		}
		for _, it := range s.Items {
			if it < 0 || int(it) >= t.nItems {
				return 0, 0, fmt.Errorf("sequence %d: item %d outside [0, %d)", i, it, t.nItems)
			}
		}
		for _, ty := range s.Types {
			if int(ty)*D >= len(t.T) {
				return 0, 0, fmt.Errorf("sequence %d: type %d outside [0, %d)", i, ty, len(t.T)/D)
			}
		}
		if len(s.Items) >= 2 {
			train = append(train, i)
		}
	}
	if len(train) == 0 {
		return 0, 0, errors.New("sequence: no sequence with two or more events")
	}
	var snapshot [][]float32
	best, bad, bestEpoch := math.Inf(-1), 0, 0
	for epoch := 1; epoch <= o.Epochs; epoch++ {
		// Batches of B sequences of similar length, each on the smallest
		// window that holds its sequences, in a shuffled order.
		t.rng.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
		sample := train
		if n := o.EpochSequences; n > 0 && n < len(sample) {
			sample = sample[:n]
		}
		byWindow := map[int][]int{}
		for _, i := range sample {
			l := t.windowFor(min(len(seqs[i].Items)-1, L))
			byWindow[l] = append(byWindow[l], i)
		}
		var batches [][]int
		for _, l := range t.windows() {
			for g := byWindow[l]; len(g) > 0; g = g[min(B, len(g)):] {
				batches = append(batches, g[:min(B, len(g))])
			}
		}
		t.rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
		for _, batch := range batches {
			if err := ctx.Err(); err != nil {
				return best, epoch - 1, err
			}
			gs, err := t.graphs(t.windowFor(min(len(seqs[batch[0]].Items)-1, L)), true)
			if err != nil {
				return best, epoch - 1, err
			}
			// Shard k takes the batch's sequences k·bw … (k+1)·bw−1; the RNG
			// is drawn in the order of the whole batch's rows.
			bw, count := gs[0].B, 0
			for k, sg := range gs {
				for b := range bw {
					var s Sequence
					if i := k*bw + b; i < len(batch) {
						s = seqs[batch[i]]
					}
					count += t.fillInto(sg, b, s, sg.rec)
				}
			}
			if count == 0 {
				continue
			}
			for k := range gs[0].K { // the batch's shared negatives
				it := t.rng.IntN(t.nItems)
				for _, sg := range gs {
					sg.negIdx[k] = float32(it)
					copy(sg.neg[k*D:(k+1)*D], t.E[it*D:(it+1)*D])
				}
			}
			masks := make([][]float32, len(gs))
			for k, sg := range gs {
				for r := range sg.B * sg.L {
					if sg.w[r] != 0 {
						sg.w[r] = 1 / float32(count) // the batch's mean loss
					}
				}
				masks[k] = t.dropout(sg)
			}
			if err := t.runGraphs(gs, func(_ int, g *seqGraph) error { return g.run() }); err != nil {
				return best, epoch - 1, err
			}
			loss := 0.0
			for _, sg := range gs {
				loss += sg.loss
			}
			if !finite(loss) {
				return best, epoch - 1, fmt.Errorf("sequence: loss %v in epoch %d (lower sequence.learning_rate)", loss, epoch)
			}
			t.apply(gs, masks)
		}
		epochs = epoch
		if o.Validate == nil {
			continue
		}
		score, err := o.Validate(t, epoch)
		if err != nil {
			return best, epoch, err
		}
		if score > best {
			best, bad, snapshot, bestEpoch = score, 0, t.snapshot(), epoch
			continue
		}
		if bad++; bad >= max(1, o.Patience) {
			break
		}
	}
	if snapshot != nil {
		t.restore(snapshot)
		epochs = bestEpoch
	}
	return best, epochs, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// dropout zeroes input elements with probability Dropout (scaling the rest
// by 1/(1−p)) and returns the mask (nil without dropout).
func (t *SeqTrainer) dropout(sg *seqGraph) []float32 {
	p := t.o.Dropout
	if p == 0 {
		return nil
	}
	x := sg.x
	mask := make([]float32, len(x))
	keep := float32(1 / (1 - p))
	for i := range x {
		if t.rng.Float64() >= p {
			mask[i] = keep
		}
		x[i] *= mask[i]
	}
	return mask
}

// apply scatters the step's gradients (the shards' in shard order) and
// runs Adam: lazy on the touched embedding rows, dense on the blocks (the
// shards' gradients summed into shard 0's buffers).
func (t *SeqTrainer) apply(gs []*seqGraph, masks [][]float32) {
	D := t.o.Dim
	g := make([]float32, D)
	for k, sg := range gs {
		L, rec, mask := sg.L, sg.rec, masks[k]
		for r, it := range rec.items {
			if it < 0 {
				continue
			}
			copy(g, sg.gX[r*D:(r+1)*D])
			if mask != nil {
				for j := range g {
					g[j] *= mask[r*D+j]
				}
			}
			t.gE.add(it, g)
			t.gP.add(int32(t.o.MaxLen-L+r%L), g)
			t.gT.add(int32(rec.types[r]), g)
			t.gG.add(int32(rec.gaps[r]), g)
			t.gE.add(rec.next[r], sg.gPos[r*D:(r+1)*D])
			if rec.neg[r] >= 0 {
				t.gE.add(rec.neg[r], sg.gNeg[r*D:(r+1)*D])
			}
		}
		for q := range sg.K {
			t.gE.add(int32(sg.negIdx[q]), sg.gNeg[q*D:(q+1)*D])
		}
	}
	t.step++
	step := adamRates(t.o.LearningRate, t.step)
	l2 := float32(t.o.L2)
	t.gE.apply(t.E, t.mE, t.vE, l2, step)
	t.gP.apply(t.P, t.mP, t.vP, 0, step)
	t.gT.apply(t.T, t.mT, t.vT, 0, step)
	t.gG.apply(t.Gp, t.mG, t.vG, 0, step)
	for i, p := range t.enc.params() {
		sum := gs[0].gParams[i]
		for _, sg := range gs[1:] {
			f32.Axpy(1, sg.gParams[i], sum)
		}
		adamUpdate(p, sum, t.mD[i], t.vD[i], step)
	}
}

func (t *SeqTrainer) snapshot() [][]float32 {
	out := [][]float32{slices.Clone(t.E), slices.Clone(t.P), slices.Clone(t.T), slices.Clone(t.Gp)}
	for _, p := range t.enc.params() {
		out = append(out, slices.Clone(p))
	}
	return out
}

func (t *SeqTrainer) restore(s [][]float32) {
	copy(t.E, s[0])
	copy(t.P, s[1])
	copy(t.T, s[2])
	copy(t.Gp, s[3])
	for i, p := range t.enc.params() {
		copy(p, s[4+i])
	}
}

// States computes each sequence's state (the encoder's output at its last
// event, D values; zeros for an empty sequence) from its last MaxLen events.
func (t *SeqTrainer) States(seqs []Sequence) ([]float32, error) {
	D, L, B := t.o.Dim, t.o.MaxLen, t.o.BatchSize
	out := make([]float32, len(seqs)*D)
	// The non-empty sequences only, in batches of similar length, each on
	// the smallest window that holds them.
	byWindow := map[int][]int{}
	for i, s := range seqs {
		if len(s.Items) > 0 {
			l := t.windowFor(min(len(s.Items), L))
			byWindow[l] = append(byWindow[l], i)
		}
	}
	for _, l := range t.windows() {
		todo := byWindow[l]
		if len(todo) == 0 {
			continue
		}
		gs, err := t.graphs(l, false)
		if err != nil {
			return nil, err
		}
		// Batch j runs on graph j mod workers; each writes its own rows.
		nb := (len(todo) + B - 1) / B
		for lo := 0; lo < nb; lo += len(gs) {
			err := t.runGraphs(gs[:min(len(gs), nb-lo)], func(k int, sg *seqGraph) error {
				first := (lo + k) * B
				for b := range B {
					var s Sequence
					if first+b < len(todo) {
						s = seqs[todo[first+b]]
					}
					t.fillInto(sg, b, s, nil)
				}
				if err := sg.run(); err != nil {
					return err
				}
				for b := range B {
					if first+b < len(todo) {
						i, r := todo[first+b], b*l+l-1
						copy(out[i*D:(i+1)*D], sg.h[r*D:(r+1)*D])
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Score is state · E[item].
func (t *SeqTrainer) Score(state []float32, item int32) float32 {
	D := t.o.Dim
	var s float32
	for j, v := range t.E[int(item)*D : int(item+1)*D] {
		s += v * state[j]
	}
	return s
}

// normals is n draws of N(mean, scale²) from rng, as float32.
func normals(rng *rand.Rand, n int, scale, mean float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		if scale != 0 {
			s[i] = float32(mean + rng.NormFloat64()*scale)
		} else {
			s[i] = float32(mean)
		}
	}
	return s
}

// The encoder's tensors in model.Weights: "seq/options" holds [dim, max
// length, heads, blocks, time gaps 0|1, event types], then the item,
// position, type and gap embeddings and the dense parameters in order.
const (
	seqOptionsTensor = "seq/options"
	SeqItemsTensor   = "seq/items" // nItems × dim: rows follow the slice's item order
)

// ToWeights exports the encoder (not its optimiser state).
func (t *SeqTrainer) ToWeights() *model.Weights {
	o, D := t.o, t.o.Dim
	gaps := float32(0)
	if o.TimeGaps {
		gaps = 1
	}
	w := &model.Weights{}
	w.Put(model.Tensor{Name: seqOptionsTensor, Shape: []int{6}, Data: []float32{float32(D), float32(o.MaxLen), float32(o.Heads), float32(o.Blocks), gaps, float32(len(t.T) / D)}})
	w.Put(model.Tensor{Name: SeqItemsTensor, Shape: []int{t.nItems, D}, Data: slices.Clone(t.E)})
	w.Put(model.Tensor{Name: "seq/positions", Shape: []int{o.MaxLen, D}, Data: slices.Clone(t.P)})
	w.Put(model.Tensor{Name: "seq/types", Shape: []int{len(t.T) / D, D}, Data: slices.Clone(t.T)})
	w.Put(model.Tensor{Name: "seq/gaps", Shape: []int{GapBuckets, D}, Data: slices.Clone(t.Gp)})
	for i, p := range t.enc.params() {
		w.Put(model.Tensor{Name: fmt.Sprintf("seq/param/%03d", i), Shape: []int{len(p)}, Data: slices.Clone(p)})
	}
	return w
}

// SeqFromWeights rebuilds an encoder for computing states (States, Score)
// from ToWeights' tensors; batch is the graph's batch of sequences and
// workers the goroutines States runs batches on.
func SeqFromWeights(w *model.Weights, batch, workers int) (*SeqTrainer, error) {
	ot, ok := w.Get(seqOptionsTensor)
	if !ok || len(ot.Data) != 6 {
		return nil, errors.New("sequence weights: no " + seqOptionsTensor)
	}
	v := ot.Data
	o := SeqOptions{Dim: int(v[0]), MaxLen: int(v[1]), Heads: int(v[2]), Blocks: int(v[3]), TimeGaps: v[4] != 0,
		Epochs: 1, BatchSize: max(1, batch), LearningRate: 1, Workers: workers}
	D := o.Dim
	items, ok := w.Get(SeqItemsTensor)
	if !ok || D < 1 || len(items.Data)%D != 0 {
		return nil, errors.New("sequence weights: no item embeddings of the stated dim")
	}
	t, err := NewSeqTrainer(len(items.Data)/D, int(v[5]), o)
	if err != nil {
		return nil, fmt.Errorf("sequence weights: %w", err)
	}
	set := func(name string, dst []float32) error {
		x, ok := w.Get(name)
		if !ok || len(x.Data) != len(dst) {
			return fmt.Errorf("sequence weights: %s missing or not %d values", name, len(dst))
		}
		copy(dst, x.Data)
		return nil
	}
	errs := []error{set(SeqItemsTensor, t.E), set("seq/positions", t.P), set("seq/types", t.T), set("seq/gaps", t.Gp)}
	for i, p := range t.enc.params() {
		errs = append(errs, set(fmt.Sprintf("seq/param/%03d", i), p))
	}
	if err := errors.Join(errs...); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Dim is the state size.
func (t *SeqTrainer) Dim() int { return t.o.Dim }

// Items is the item embeddings (nItems × Dim; a view).
func (t *SeqTrainer) Items() []float32 { return t.E }
