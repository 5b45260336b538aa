package nn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/shelfml/shelf/model"
)

// RankingOptions are the ranking model's hyper-parameters and run controls.
type RankingOptions struct {
	Dim       int
	Hidden    []int // MLP hidden sizes, e.g. [64, 64]; the output layer (→1) is added
	Epochs    int
	BatchSize int // rows per step, rounded down to whole positives' groups (1+Negatives rows for bce, Negatives for bpr)
	Negatives int // sampled negatives per positive
	// LearningRate is Adam's step size; L2 adds L2·row to the gradient of
	// every embedding row a step touches (the dense layers are not decayed).
	LearningRate, L2 float64
	Loss             string // bce | bpr
	NegSampling      string // uniform | popularity
	NegAlpha         float64
	Patience         int // epochs without validation improvement before stopping; 0 = never stop early
	Seed             int64
	// Shards splits each batch into that many equal shares, each run
	// through its own graph, whose gradients are summed in shard order
	// (0 = DefaultShards). It is part of the result: the same Shards gives
	// the same bits whatever Workers is.
	Shards int
	// Workers is how many goroutines run the shards' graphs (at most
	// Shards are used; ≤ 1 runs them one after another). It changes the
	// speed, never the result.
	Workers int
	// EpochPositives, when > 0 and below the number of positives, makes an
	// epoch a fresh sample of that many positives (the head of the epoch's
	// seeded permutation), so large logs get more, cheaper epochs and early
	// stopping sooner; 0 = every positive every epoch.
	EpochPositives int
	// Dropout is the probability of zeroing a hidden unit of the MLP head
	// during training (inverted dropout; 0 = none). Masks come from the
	// seeded RNG, so results stay reproducible.
	Dropout float64

	// Resume continues from a checkpoint produced by OnCheckpoint for the
	// same data and options (Epochs and Patience may differ).
	Resume *model.Weights
	// OnCheckpoint, when set, receives a checkpoint at the end of every
	// epoch, every CheckpointEvery within an epoch, and once more when ctx is
	// cancelled (before TrainRanking returns ctx's error; use a context that
	// outlives the cancellation to write it). The tensors are copies.
	OnCheckpoint    func(*model.Weights) error
	CheckpointEvery time.Duration
}

// ErrDiverged means training produced a non-finite loss: the weights are
// garbage from there on (a learning rate far too high for the data, or
// inputs out of any sensible range). Retrying does not help.
var ErrDiverged = errors.New("training diverged (lower the learning rate)")

// DefaultShards is the batch split when RankingOptions.Shards is 0: two
// shares, so that the two cores of a small node both work on every step.
const DefaultShards = 2

func (o RankingOptions) shards() int {
	if o.Shards > 0 {
		return o.Shards
	}
	return DefaultShards
}

// RankingData is the training set of the ranking model.
type RankingData struct {
	NUsers, NItems int
	// Positives are the training pairs, one per (user, item), weights > 0.
	// Their order is part of the input: the same order gives the same model.
	Positives []Positive
	// UserItems answers "is i a positive of u"; built from Positives when nil.
	UserItems *SortedSets
	// Side are optional item side features (e.g. catalog category, price
	// bucket): each value has an embedding added to the item's own while
	// training, and the returned model has them folded into its item
	// embeddings, so scoring and the weights format do not change.
	Side []SideFeature
}

// SideFeature maps items to the values of one categorical item attribute.
type SideFeature struct {
	Name   string  // e.g. "category"; names the checkpoint tensors
	Of     []int32 // per item: value id in [0, Values), or -1 = unknown
	Values int
}

// EpochStats describes one finished epoch.
type EpochStats struct {
	Epoch      int     // 1-based
	Loss       float64 // weighted mean training loss
	Validation float64 // Validate's score; 0 without one
	Samples    int     // training rows (positives and negatives)
	Seconds    float64
}

// Validate scores the current model after an epoch; higher is better (e.g.
// validation NDCG@10). The model is only valid during the call.
type Validate func(m *model.RankingModel) (float64, error)

// TrainRanking trains model.RankingModel on d with sampled negatives and Adam,
// calling validate (if not nil) and progress (if not nil) after every epoch.
// With a validate function it stops after Patience epochs without improvement
// and returns the best epoch's weights. Same inputs and options give
// bit-identical weights; resuming from any checkpoint gives the same weights as
// an uninterrupted run.
func TrainRanking(ctx context.Context, d RankingData, o RankingOptions, validate Validate, progress func(EpochStats)) (m *model.RankingModel, hist []EpochStats, err error) {
	defer recoverErr(&err, "train ranking")
	if err := checkRanking(d, o); err != nil {
		return nil, nil, err
	}
	if d.UserItems == nil {
		d.UserItems = NewSortedSets(d.NUsers, d.Positives)
	}
	t, err := newRankTrainer(d, o)
	if err != nil {
		return nil, nil, err
	}
	if err := t.run(ctx, validate, progress); err != nil {
		return nil, t.history, err
	}
	if t.best != nil {
		return t.best, t.history, nil
	}
	return t.folded(), t.history, nil
}

func checkRanking(d RankingData, o RankingOptions) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if o.Dim <= 0 {
		bad("dim %d must be > 0", o.Dim)
	}
	for _, h := range o.Hidden {
		if h <= 0 {
			bad("hidden sizes %v must be > 0", o.Hidden)
			break
		}
	}
	if o.EpochPositives < 0 {
		bad("epoch positives %d must be ≥ 0", o.EpochPositives)
	}
	if o.Epochs < 0 || o.BatchSize <= 0 || o.Negatives <= 0 {
		bad("epochs %d, batch size %d, negatives %d: want ≥ 0, > 0, > 0", o.Epochs, o.BatchSize, o.Negatives)
	}
	if !(o.LearningRate > 0) || !(o.L2 >= 0) {
		bad("learning rate %g must be > 0 and l2 %g ≥ 0", o.LearningRate, o.L2)
	}
	if o.Loss != "bce" && o.Loss != "bpr" {
		bad("loss %q: want bce or bpr", o.Loss)
	}
	if !(o.Dropout >= 0 && o.Dropout < 1) {
		bad("dropout %g: want 0 ≤ p < 1", o.Dropout)
	}
	if o.NegSampling != "uniform" && o.NegSampling != "popularity" {
		bad("neg sampling %q: want uniform or popularity", o.NegSampling)
	}
	for _, f := range d.Side {
		if f.Name == "" || len(f.Of) != d.NItems || f.Values <= 0 || slices.ContainsFunc(f.Of, func(v int32) bool { return v < -1 || int(v) >= f.Values }) {
			bad("side feature %q: want a name, a value id in [-1, %d) for each of %d items (have %d)", f.Name, f.Values, d.NItems, len(f.Of))
		}
	}
	if d.NUsers <= 0 || d.NItems <= 0 || len(d.Positives) == 0 {
		bad("need users, items and positives, have %d, %d, %d", d.NUsers, d.NItems, len(d.Positives))
	}
	for k, p := range d.Positives {
		if p.User < 0 || int(p.User) >= d.NUsers || p.Item < 0 || int(p.Item) >= d.NItems || !(p.Weight > 0) || math.IsInf(float64(p.Weight), 0) {
			bad("positive %d (%d, %d, %g) out of range or not positively weighted", k, p.User, p.Item, p.Weight)
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("train ranking: options: %w", err)
	}
	return nil
}

// rankTrainer is the full training state; everything in it is checkpointed.
type rankTrainer struct {
	d   RankingData
	o   RankingOptions
	neg *negSampler
	fp  uint64

	m          *model.RankingModel
	side       [][]float32             // per side feature: Values×Dim embeddings (zero-initialised)
	mom        map[string][2][]float32 // param name → Adam m, v
	step       int64
	epoch      int // epochs done
	batch      int // batches of the current epoch done
	rngState   []byte
	lossSum    float64
	weightSum  float64
	samples    int
	best       *model.RankingModel
	bestScore  float64
	bad        int
	stopped    bool
	history    []EpochStats
	epochStart time.Time
}

// PCG stream ids: 1 for initialisation, 2+2e / 3+2e for epoch e's
// permutation / sampling, so any epoch can be replayed from (Seed, e).
const initStream = 1

func newRankTrainer(d RankingData, o RankingOptions) (*rankTrainer, error) {
	t := &rankTrainer{d: d, o: o, fp: fingerprint(d, o)}
	t.neg = newNegSampler(d, o.NegSampling, o.NegAlpha)
	if o.Resume != nil {
		c, err := CheckpointFromWeights(o.Resume)
		if err != nil {
			return nil, fmt.Errorf("train ranking: resume: %w", err)
		}
		if c.Fingerprint != t.fp {
			return nil, errors.New("train ranking: resume: checkpoint was made for other data or options")
		}
		// Copies: training mutates its state in place, the caller keeps Resume.
		t.m, t.step, t.epoch, t.batch, t.rngState = cloneModel(c.Model), c.Step, c.Epoch, c.Batch, c.RNG
		t.lossSum, t.weightSum, t.samples = c.LossSum, c.WeightSum, c.Samples
		t.bestScore, t.bad, t.stopped, t.history = c.BestScore, c.BadEpochs, c.Stopped, c.History
		if c.Best != nil {
			if c.Best.Dim != t.m.Dim || len(c.Best.User) != len(t.m.User) || len(c.Best.Item) != len(t.m.Item) || len(c.Best.Layers) != len(t.m.Layers) {
				return nil, errors.New("train ranking: resume: best weights do not match the model's shape")
			}
			t.best = cloneModel(c.Best)
		}
		for _, f := range d.Side {
			tab, ok := c.side(f.Name)
			if !ok || len(tab) != f.Values*t.m.Dim {
				return nil, fmt.Errorf("train ranking: resume: side feature %s missing or mis-sized", f.Name)
			}
			t.side = append(t.side, slices.Clone(tab))
		}
		t.mom = map[string][2][]float32{}
		for _, p := range t.params() {
			mt, ok1 := c.moment("adam.m." + p.Name)
			vt, ok2 := c.moment("adam.v." + p.Name)
			if !ok1 || !ok2 || len(mt) != len(p.Data) || len(vt) != len(p.Data) {
				return nil, fmt.Errorf("train ranking: resume: Adam moments of %s missing or mis-sized", p.Name)
			}
			t.mom[p.Name] = [2][]float32{slices.Clone(mt), slices.Clone(vt)}
		}
		if o.Dim != t.m.Dim || len(t.m.Layers) != len(o.Hidden)+1 {
			return nil, errors.New("train ranking: resume: checkpoint shape differs from the options")
		}
		return t, nil
	}
	t.m = initRanking(d.NUsers, d.NItems, o.Dim, o.Hidden, rand.New(rand.NewPCG(uint64(o.Seed), initStream)))
	for _, f := range d.Side {
		t.side = append(t.side, make([]float32, f.Values*o.Dim))
	}
	t.mom = map[string][2][]float32{}
	for _, p := range t.params() {
		t.mom[p.Name] = [2][]float32{make([]float32, len(p.Data)), make([]float32, len(p.Data))}
	}
	return t, nil
}

// modelParams lists m's tensors in a fixed order; Data aliases m.
func modelParams(m *model.RankingModel) []model.Tensor { return m.ToWeights().Tensors }

// sideTensors names the side-feature tables ("side.<name>"); Data aliases them.
func (t *rankTrainer) sideTensors() []model.Tensor {
	var ts []model.Tensor
	for k, f := range t.d.Side {
		ts = append(ts, model.Tensor{Name: "side." + f.Name, Shape: []int{f.Values, t.m.Dim}, Data: t.side[k]})
	}
	return ts
}

// params are every trained tensor: the model's, then the side tables.
func (t *rankTrainer) params() []model.Tensor { return append(modelParams(t.m), t.sideTensors()...) }

// folded is the model with each item's side embeddings added to its own
// (t.m itself when there are no side features).
func (t *rankTrainer) folded() *model.RankingModel {
	if len(t.side) == 0 {
		return t.m
	}
	m := cloneModel(t.m)
	D := m.Dim
	for k, f := range t.d.Side {
		for i, v := range f.Of {
			if v >= 0 {
				row, add := m.Item[i*D:(i+1)*D], t.side[k][int(v)*D:int(v+1)*D]
				for j := range row {
					row[j] += add[j]
				}
			}
		}
	}
	return m
}

// itemVec writes item i's training vector (own + side embeddings) to dst.
func (t *rankTrainer) itemVec(dst []float32, i int32) {
	copy(dst, t.m.ItemVec(i))
	D := t.m.Dim
	for k, f := range t.d.Side {
		if v := f.Of[i]; v >= 0 {
			add := t.side[k][int(v)*D : int(v+1)*D]
			for j := range dst {
				dst[j] += add[j]
			}
		}
	}
}

// initRanking draws embeddings from N(0, 0.1²), dense layers He-normal, zero biases.
func initRanking(nUsers, nItems, dim int, hidden []int, rng *rand.Rand) *model.RankingModel {
	m := &model.RankingModel{Dim: dim, NUsers: nUsers, NItems: nItems,
		User: make([]float32, nUsers*dim), Item: make([]float32, nItems*dim), ItemBias: make([]float32, nItems)}
	for i := range m.User {
		m.User[i] = float32(0.1 * rng.NormFloat64())
	}
	for i := range m.Item {
		m.Item[i] = float32(0.1 * rng.NormFloat64())
	}
	m.Layers = initDense(3*dim, hidden, rng)
	return m
}

func initDense(in int, hidden []int, rng *rand.Rand) []model.Dense {
	var ls []model.Dense
	for _, out := range append(append([]int(nil), hidden...), 1) {
		l := model.Dense{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		s := math.Sqrt(2 / float64(in))
		for k := range l.W {
			l.W[k] = float32(s * rng.NormFloat64())
		}
		ls = append(ls, l)
		in = out
	}
	return ls
}

func (t *rankTrainer) groupRows() int {
	if t.o.Loss == "bpr" {
		return t.o.Negatives
	}
	return 1 + t.o.Negatives
}

// positivesPerBatch is the number of positives (with their negatives) in one step.
func (t *rankTrainer) positivesPerBatch() int { return max(1, t.o.BatchSize/t.groupRows()) }

func (t *rankTrainer) run(ctx context.Context, validate Validate, progress func(EpochStats)) error {
	P := t.positivesPerBatch()
	st, err := newStepper(t, P*t.groupRows(), t.o.shards(), t.o.Workers)
	if err != nil {
		return fmt.Errorf("train ranking: %w", err)
	}
	defer st.Close()
	n := len(t.d.Positives)
	used := n // positives per epoch
	if t.o.EpochPositives > 0 {
		used = min(n, t.o.EpochPositives)
	}
	nBatches := (used + P - 1) / P
	lastCkpt := time.Now()
	for ; t.epoch < t.o.Epochs && !t.stopped; t.epoch++ {
		t.epochStart = time.Now()
		perm := make([]int32, n)
		for i := range perm {
			perm[i] = int32(i)
		}
		permRNG := rand.New(rand.NewPCG(uint64(t.o.Seed), uint64(2+2*t.epoch)))
		permRNG.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		pcg := rand.NewPCG(uint64(t.o.Seed), uint64(3+2*t.epoch))
		if t.rngState != nil {
			if err := pcg.UnmarshalBinary(t.rngState); err != nil {
				return fmt.Errorf("train ranking: resume sampler state: %w", err)
			}
			t.rngState = nil
		}
		rng := rand.New(pcg)
		for ; t.batch < nBatches; t.batch++ {
			if err := ctx.Err(); err != nil {
				if cerr := t.checkpoint(pcg); cerr != nil {
					return fmt.Errorf("train ranking: epoch %d batch %d: %w (and checkpoint: %w)", t.epoch+1, t.batch, err, cerr)
				}
				return fmt.Errorf("train ranking: epoch %d batch %d: %w", t.epoch+1, t.batch, err)
			}
			if t.o.CheckpointEvery > 0 && time.Since(lastCkpt) >= t.o.CheckpointEvery {
				if err := t.checkpoint(pcg); err != nil {
					return fmt.Errorf("train ranking: epoch %d: checkpoint: %w", t.epoch+1, err)
				}
				lastCkpt = time.Now()
			}
			lo := t.batch * P
			if err := st.step(perm[lo:min(lo+P, used)], rng); err != nil {
				return fmt.Errorf("train ranking: epoch %d batch %d: %w", t.epoch+1, t.batch, err)
			}
		}
		if err := t.endEpoch(validate, progress); err != nil {
			return err
		}
		lastCkpt = time.Now()
	}
	return nil
}

func (t *rankTrainer) endEpoch(validate Validate, progress func(EpochStats)) error {
	s := EpochStats{Epoch: t.epoch + 1, Samples: t.samples, Seconds: time.Since(t.epochStart).Seconds()}
	if t.weightSum > 0 {
		s.Loss = t.lossSum / t.weightSum
	}
	if math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) {
		return fmt.Errorf("train ranking: epoch %d: loss %v: %w", s.Epoch, s.Loss, ErrDiverged)
	}
	if validate != nil {
		cur := t.folded()
		v, err := validate(cur)
		if err != nil {
			return fmt.Errorf("train ranking: validate epoch %d: %w", s.Epoch, err)
		}
		s.Validation = v
		if t.best == nil || v > t.bestScore {
			if t.best == nil {
				t.best = cloneModel(cur)
			} else {
				copyModel(t.best, cur)
			}
			t.bestScore, t.bad = v, 0
		} else {
			t.bad++
			t.stopped = t.o.Patience > 0 && t.bad >= t.o.Patience
		}
	}
	t.history = append(t.history, s)
	t.batch, t.lossSum, t.weightSum, t.samples = 0, 0, 0, 0
	if progress != nil {
		progress(s)
	}
	// The checkpoint describes the state after this epoch.
	t.epoch++
	err := t.checkpoint(nil)
	t.epoch--
	if err != nil {
		return fmt.Errorf("train ranking: checkpoint after epoch %d: %w", s.Epoch, err)
	}
	return nil
}

// checkpoint hands the current state to OnCheckpoint; pcg is the sampling
// RNG when stopping inside an epoch.
func (t *rankTrainer) checkpoint(pcg *rand.PCG) error {
	if t.o.OnCheckpoint == nil {
		return nil
	}
	c := &Checkpoint{
		Epoch: t.epoch, Batch: t.batch, Step: t.step, Model: cloneModel(t.m),
		BestScore: t.bestScore, BadEpochs: t.bad, Stopped: t.stopped,
		History: append([]EpochStats(nil), t.history...),
		LossSum: t.lossSum, WeightSum: t.weightSum, Samples: t.samples, Fingerprint: t.fp,
	}
	if t.best != nil {
		c.Best = cloneModel(t.best)
	}
	if pcg != nil && t.batch > 0 {
		b, err := pcg.MarshalBinary()
		if err != nil {
			return err
		}
		c.RNG = b
	}
	for _, p := range t.sideTensors() {
		c.Side = append(c.Side, model.Tensor{Name: p.Name, Shape: p.Shape, Data: slices.Clone(p.Data)})
	}
	for _, p := range t.params() {
		mv := t.mom[p.Name]
		c.Moments = append(c.Moments,
			model.Tensor{Name: "adam.m." + p.Name, Shape: p.Shape, Data: append([]float32(nil), mv[0]...)},
			model.Tensor{Name: "adam.v." + p.Name, Shape: p.Shape, Data: append([]float32(nil), mv[1]...)})
	}
	return t.o.OnCheckpoint(c.ToWeights())
}

// stepper turns one slice of positives into a batch, runs the graphs (one
// per worker, each on a contiguous share of the rows) and applies the updates.
type stepper struct {
	t                *rankTrainer
	graphs           []*rankGraph // one per shard
	workers          int          // goroutines running the graphs
	bw               int          // rows per graph
	bpr              bool
	rowU, rowI, rowN []int32
	rowY, wRaw       []float32
	sgU, sgI, sgB    *sparseGrad
	sgSide           []*sparseGrad  // per side feature
	dense            []model.Tensor // MLP params in graph order
	denseSum         denseGrads     // gradients summed over graphs
	errs             []error
	touch            int32 // keeps step's prefetching loads alive
}

// newStepper builds shards graphs sharing rows rows per step, run by
// workers goroutines.
func newStepper(t *rankTrainer, rows, shards, workers int) (s *stepper, err error) {
	shards = max(1, min(shards, rows))
	bw := (rows + shards - 1) / shards
	B := bw * shards
	s = &stepper{t: t, bw: bw, bpr: t.o.Loss == "bpr", workers: max(1, min(workers, shards)),
		rowU: make([]int32, B), rowI: make([]int32, B), rowN: make([]int32, B), rowY: make([]float32, B), wRaw: make([]float32, B),
		sgU: newSparseGrad(t.m.NUsers, t.m.Dim), sgI: newSparseGrad(t.m.NItems, t.m.Dim), sgB: newSparseGrad(t.m.NItems, 1),
		denseSum: newDenseGrads(t.m.Layers), errs: make([]error, shards)}
	for _, f := range t.d.Side {
		s.sgSide = append(s.sgSide, newSparseGrad(f.Values, t.m.Dim))
	}
	for range shards {
		rg, err := newRankGraph(t.m, bw, s.bpr, t.o.Dropout > 0)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.graphs = append(s.graphs, rg)
	}
	for i, l := range t.m.Layers {
		s.dense = append(s.dense,
			model.Tensor{Name: fmt.Sprintf("mlp.%d.w", i), Data: l.W},
			model.Tensor{Name: fmt.Sprintf("mlp.%d.b", i), Data: l.B})
	}
	return s, nil
}

// Close releases every graph's VM.
func (s *stepper) Close() {
	for _, rg := range s.graphs {
		rg.Close()
	}
}

// at maps a batch row to its graph and the row within it.
func (s *stepper) at(r int) (*rankGraph, int) { return s.graphs[r/s.bw], r % s.bw }

func (s *stepper) step(idx []int32, rng *rand.Rand) error {
	t := s.t
	ps := t.d.Positives
	bpr := s.bpr
	if sets := t.neg.pos; sets != nil && t.o.Negatives > 0 {
		// The negatives below look up each user's positives: load the start
		// of every user's row first, so that those misses overlap.
		var touch int32
		for _, k := range idx {
			u := ps[k].User
			if o := sets.Offsets[u]; o < sets.Offsets[u+1] {
				touch += sets.Items[o]
			}
		}
		s.touch = touch
	}
	rows := 0
	for _, k := range idx {
		p := ps[k]
		if !bpr {
			s.rowU[rows], s.rowI[rows], s.rowY[rows], s.wRaw[rows] = p.User, p.Item, 1, p.Weight
			rows++
		}
		for range t.o.Negatives {
			n := t.neg.draw(rng, p.User)
			if bpr {
				s.rowU[rows], s.rowI[rows], s.rowN[rows], s.wRaw[rows] = p.User, p.Item, n, p.Weight
			} else {
				s.rowU[rows], s.rowI[rows], s.rowY[rows], s.wRaw[rows] = p.User, n, 0, p.Weight
			}
			rows++
		}
	}
	var wsum float64
	for r := range rows {
		wsum += float64(s.wRaw[r])
	}
	if t.o.Dropout > 0 {
		for _, rg := range s.graphs {
			for _, mask := range rg.masks {
				fillDropout(mask, t.o.Dropout, rng)
			}
		}
	}
	if err := s.runGraphs(rows, wsum); err != nil {
		return err
	}
	var loss float64 // Σ w·loss over the batch (w sums to 1), in worker order
	for _, rg := range s.graphs {
		loss += rg.loss.sum
	}
	D := t.m.Dim
	for r := range rows {
		rg, q := s.at(r)
		s.sgU.add(s.rowU[r], rg.gU[q*D:(q+1)*D])
		s.sgI.add(s.rowI[r], rg.gV[q*D:(q+1)*D])
		s.sgB.add(s.rowI[r], rg.gBias[q:q+1])
		s.addSide(s.rowI[r], rg.gV[q*D:(q+1)*D])
		if bpr {
			s.sgI.add(s.rowN[r], rg.gVn[q*D:(q+1)*D])
			s.sgB.add(s.rowN[r], rg.gBiasN[q:q+1])
			s.addSide(s.rowN[r], rg.gVn[q*D:(q+1)*D])
		}
	}
	t.lossSum += loss * wsum
	t.weightSum += wsum
	t.samples += rows

	dense := s.graphs[0].gDense
	if len(s.graphs) > 1 { // sum in shard order: deterministic for a given Shards
		for k, sum := range s.denseSum {
			copy(sum, s.graphs[0].gDense[k])
			for _, rg := range s.graphs[1:] {
				for j, g := range rg.gDense[k] {
					sum[j] += g
				}
			}
		}
		dense = s.denseSum
	}
	t.step++
	ss := adamRates(t.o.LearningRate, t.step)
	l2 := float32(t.o.L2)
	mom := func(name string) ([]float32, []float32) { mv := t.mom[name]; return mv[0], mv[1] }
	m := t.m
	mu, vu := mom("user_emb")
	s.sgU.apply(m.User, mu, vu, l2, ss)
	mi, vi := mom("item_emb")
	s.sgI.apply(m.Item, mi, vi, l2, ss)
	mb, vb := mom("item_bias")
	s.sgB.apply(m.ItemBias, mb, vb, 0, ss)
	for k, f := range t.d.Side {
		ms, vs := mom("side." + f.Name)
		s.sgSide[k].apply(t.side[k], ms, vs, l2, ss)
	}
	for k, p := range s.dense {
		mk, vk := mom(p.Name)
		adamUpdate(p.Data, dense[k], mk, vk, ss)
	}
	return nil
}

// fillDropout sets each entry of mask to 0 with probability p, else to
// 1/(1-p), using 16 random bits per entry.
func fillDropout(mask []float32, p float64, rng *rand.Rand) {
	thr := uint64(p * 65536)
	keep := float32(1 / (1 - p))
	var bits uint64
	for i := range mask {
		if i%4 == 0 {
			bits = rng.Uint64()
		}
		if bits&0xffff < thr {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
		bits >>= 16
	}
}

// addSide adds an item row's gradient to the rows of its side values (the
// item vector is their sum, so each gets the same gradient).
func (s *stepper) addSide(item int32, g []float32) {
	for k, f := range s.t.d.Side {
		if v := f.Of[item]; v >= 0 {
			s.sgSide[k].add(v, g)
		}
	}
}

// runGraphs has every shard gather its rows, run its graph and weigh its
// rows' losses; worker w runs shards w, w+workers, … (worker 0 on this
// goroutine: one wake-up fewer per step). Each shard's result lands in its
// own graph, so the schedule does not change any bit.
func (s *stepper) runGraphs(rows int, wsum float64) error {
	work := func(w int) {
		for k := w; k < len(s.graphs); k += s.workers {
			s.gather(k, rows, wsum)
			s.errs[k] = s.graphs[k].run()
		}
	}
	if s.workers == 1 {
		work(0)
		return errors.Join(s.errs...)
	}
	var wg sync.WaitGroup
	for w := 1; w < s.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w)
		}()
	}
	work(0)
	wg.Wait()
	return errors.Join(s.errs...)
}

// gather fills graph k's inputs with its share of the batch's rows, zeros
// past the last row.
func (s *stepper) gather(k, rows int, wsum float64) {
	t, rg := s.t, s.graphs[k]
	m, D := t.m, t.m.Dim
	// Load a word of every row first so that the cache misses overlap (see
	// sparseGrad.apply).
	var touch float32
	for r := k * s.bw; r < min(rows, (k+1)*s.bw) && D > 0; r++ {
		touch += m.User[int(s.rowU[r])*D] + m.Item[int(s.rowI[r])*D] + m.User[int(s.rowU[r])*D+D-1] + m.Item[int(s.rowI[r])*D+D-1]
	}
	rg.touch = touch
	for q := range s.bw {
		r := k*s.bw + q
		if r >= rows {
			rg.w[q], rg.y[q], rg.bias[q] = 0, 0, 0
			clear(rg.u[q*D : (q+1)*D])
			clear(rg.v[q*D : (q+1)*D])
			if s.bpr {
				rg.biasN[q] = 0
				clear(rg.vn[q*D : (q+1)*D])
			}
			continue
		}
		rg.w[q], rg.y[q] = float32(float64(s.wRaw[r])/wsum), s.rowY[r]
		copy(rg.u[q*D:(q+1)*D], m.UserVec(s.rowU[r]))
		t.itemVec(rg.v[q*D:(q+1)*D], s.rowI[r])
		rg.bias[q] = m.ItemBias[s.rowI[r]]
		if s.bpr {
			t.itemVec(rg.vn[q*D:(q+1)*D], s.rowN[r])
			rg.biasN[q] = m.ItemBias[s.rowN[r]]
		}
	}
}

func softplus(x float64) float64 { return max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }

func cloneModel(m *model.RankingModel) *model.RankingModel {
	c := *m
	c.User = append([]float32(nil), m.User...)
	c.Item = append([]float32(nil), m.Item...)
	c.ItemBias = append([]float32(nil), m.ItemBias...)
	c.Layers = cloneLayers(m.Layers)
	return &c
}

func cloneLayers(ls []model.Dense) []model.Dense {
	out := make([]model.Dense, len(ls))
	for i, l := range ls {
		out[i] = model.Dense{In: l.In, Out: l.Out, W: append([]float32(nil), l.W...), B: append([]float32(nil), l.B...)}
	}
	return out
}

// copyModel copies src's values into dst's existing slices (which a graph may alias).
func copyModel(dst, src *model.RankingModel) {
	copy(dst.User, src.User)
	copy(dst.Item, src.Item)
	copy(dst.ItemBias, src.ItemBias)
	for i := range dst.Layers {
		copy(dst.Layers[i].W, src.Layers[i].W)
		copy(dst.Layers[i].B, src.Layers[i].B)
	}
}

// fingerprint identifies the data and the options that determine the
// trajectory, so a checkpoint is never resumed into a different run.
func fingerprint(d RankingData, o RankingOptions) uint64 {
	h := fnv.New64a()
	put := func(vs ...uint64) {
		var b [8]byte
		for _, v := range vs {
			binary.LittleEndian.PutUint64(b[:], v)
			h.Write(b[:])
		}
	}
	put(uint64(d.NUsers), uint64(d.NItems), uint64(len(d.Positives)), uint64(o.Dim), uint64(o.BatchSize),
		uint64(o.Negatives), math.Float64bits(o.LearningRate), math.Float64bits(o.L2), math.Float64bits(o.NegAlpha), uint64(o.Seed),
		math.Float64bits(o.Dropout), uint64(o.EpochPositives), uint64(o.shards()))
	for _, x := range o.Hidden {
		put(uint64(x))
	}
	h.Write([]byte(o.Loss + "/" + o.NegSampling))
	for _, f := range d.Side {
		h.Write([]byte(f.Name))
		put(uint64(f.Values))
		for _, v := range f.Of {
			put(uint64(uint32(v)))
		}
	}
	buf := make([]byte, 0, 12*1024)
	for i, p := range d.Positives {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(p.User))
		buf = binary.LittleEndian.AppendUint32(buf, uint32(p.Item))
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(p.Weight))
		if len(buf) == cap(buf) || i == len(d.Positives)-1 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	return h.Sum64()
}
