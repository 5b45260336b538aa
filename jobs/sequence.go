package jobs

import (
	"bytes"
	"context"
	"fmt"
	"github.com/shelfml/shelf/internal/sysres"
	"log/slog"
	"slices"
	"time"

	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// The sequence encoder (model/nn.SeqTrainer, config section sequence) is
// one more component of the published hybrid. A run fits it three times,
// as it does the neural model: on the selection slice with early stopping
// on the validation window (where its blend weight is chosen), on the
// evaluation slice for the chosen epochs (the holdout rows `sequence` and
// `blend_without_sequence`), and on the final slice for the published
// version (sequence.shlfw) when the weight chosen is above 0. A user's
// state is computed from the user's events up to the slice's cut-off, so
// scoring reads it from the history up to the as-of date.

// sequenceOptions are the encoder's settings.
func (e *env) sequenceOptions() nn.SeqOptions {
	q := e.cfg.Sequence
	return nn.SeqOptions{Dim: q.Dim, MaxLen: q.MaxLen, Heads: q.Heads, Blocks: q.Blocks, Epochs: q.Epochs, BatchSize: q.BatchSize,
		LearningRate: q.LearningRate, Dropout: q.Dropout, Patience: q.Patience, EpochSequences: q.EpochSequences, Negatives: q.Negatives, TimeGaps: q.TimeGaps, Seed: uint64(e.cfg.Seed),
		Shards: e.cfg.Train.BatchShards, Workers: sysres.Workers(e.cfg.Train.Workers)}
}

// sequencesOf is each local user's events of ev (time order) before s's
// cutoff, with the slice's local item indices and each event's time-gap
// bucket. The sequences are index lists over the slice's events (4 + 1 + 1
// bytes per event), built once per slice.
func sequencesOf(ev []model.Event, s *slice) []nn.Sequence {
	n := make([]int32, len(s.users))
	for _, x := range ev {
		if x.Time() < s.cutoff && s.userLocal[x.User] >= 0 && s.itemLocal[x.Item] >= 0 {
			n[s.userLocal[x.User]]++
		}
	}
	seqs := make([]nn.Sequence, len(s.users))
	var total int
	for _, c := range n {
		total += int(c)
	}
	items, types, gaps := make([]int32, 0, total), make([]uint8, 0, total), make([]uint8, 0, total)
	for u, c := range n { // one backing array per field, a window of it per user
		seqs[u] = nn.Sequence{Items: items[len(items) : len(items) : len(items)+int(c)],
			Types: types[len(types) : len(types) : len(types)+int(c)], Gaps: gaps[len(gaps) : len(gaps) : len(gaps)+int(c)]}
		items, types, gaps = items[:len(items)+int(c)], types[:len(types)+int(c)], gaps[:len(gaps)+int(c)]
	}
	prev := make([]int64, len(s.users))
	for _, x := range ev {
		if x.Time() >= s.cutoff {
			continue
		}
		u, i := s.userLocal[x.User], s.itemLocal[x.Item]
		if u < 0 || i < 0 {
			continue
		}
		gap := int64(-1) // the user's first event
		if len(seqs[u].Items) > 0 {
			gap = x.Time() - prev[u]
		}
		prev[u] = x.Time()
		seqs[u].Items = append(seqs[u].Items, i)
		seqs[u].Types = append(seqs[u].Types, x.Type)
		seqs[u].Gaps = append(seqs[u].Gaps, nn.GapBucket(gap))
	}
	return seqs
}

// seqFit is a fitted encoder: its weights, whose item rows are the global
// items in items (-1: an item of a loaded version the data no longer has).
type seqFit struct {
	w          *model.Weights
	items      []int32
	epochs     int
	validation float64 // the best validation score (select fits)
	comps      map[*slice]*model.ModelRecommender
}

// fitSequence fits the encoder on s. With val it runs up to sequence.epochs
// and keeps the best epoch on val's gate metric (the encoder alone); with
// val nil it runs epochs epochs.
func (e *env) fitSequence(ctx context.Context, phase string, s *slice, epochs int, val *model.EvalInput, gateKey string) (*seqFit, error) {
	t0 := time.Now()
	o := e.sequenceOptions()
	if val == nil {
		o.Epochs = max(1, epochs)
	}
	seqs := sequencesOf(s.events, s)
	pop := e.popularity(s)
	var vseqs []nn.Sequence // validation needs the states of its users only
	if val != nil {
		vseqs = make([]nn.Sequence, len(seqs))
		for _, u := range val.Users {
			vseqs[u] = seqs[u]
		}
	}
	meter := e.meter("train", "epochs", int64(o.Epochs), "phase", "sequence_"+phase)
	defer meter.Finish()
	o.Validate = func(m *nn.SeqTrainer, epoch int) (float64, error) {
		if val == nil {
			meter.Add(1)
			return float64(epoch), nil // the last epoch is kept
		}
		rec, err := e.seqRecommender(m, vseqs, s, pop)
		if err != nil {
			return 0, err
		}
		met, err := model.Evaluate(ctx, rec, *val, 2)
		meter.Add(1, slog.Float64("validation", met[gateKey]))
		return met[gateKey], err
	}
	tr, err := nn.NewSeqTrainer(len(s.items), len(e.cfg.Events.EventTypes), o)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	best, ran, err := tr.Train(ctx, seqs)
	if err != nil {
		return nil, fmt.Errorf("sequence (%s): %w", phase, err)
	}
	f := &seqFit{w: tr.ToWeights(), items: s.items, epochs: max(1, ran)}
	if val != nil {
		f.validation = best
	}
	e.log.Info("sequence encoder fitted", "phase", phase, "epochs", f.epochs, "validation", f.validation,
		"sequences", len(seqs), "seconds", round3(time.Since(t0).Seconds()))
	return f, nil
}

// seqRecommender serves encoder tr's states of seqs over slice s's items.
func (e *env) seqRecommender(tr *nn.SeqTrainer, seqs []nn.Sequence, s *slice, pop model.Recommender) (*model.ModelRecommender, error) {
	st, err := tr.States(seqs)
	if err != nil {
		return nil, err
	}
	rm := &model.RankingModel{Dim: tr.Dim(), NUsers: len(s.users), NItems: len(s.items), User: st,
		Item: tr.Items(), ItemBias: make([]float32, len(s.items))}
	return model.NewModelRecommender(rm, s.ui, e.cfg.Score.Candidates, pop), nil
}

// weightsFor is f's weights with the item rows in s's item order (an item
// f does not know gets a zero embedding).
func (f *seqFit) weightsFor(s *slice) (*model.Weights, error) {
	it, ok := f.w.Get(nn.SeqItemsTensor)
	if !ok || len(it.Shape) != 2 || it.Shape[0] != len(f.items) {
		return nil, fmt.Errorf("sequence weights: item embeddings do not match the %d items", len(f.items))
	}
	if slices.Equal(f.items, s.items) {
		return f.w, nil
	}
	d := it.Shape[1]
	row := make(map[int32]int, len(f.items))
	for r, g := range f.items {
		if g >= 0 {
			row[g] = r
		}
	}
	emb := make([]float32, len(s.items)*d)
	for i, g := range s.items {
		if r, ok := row[g]; ok {
			copy(emb[i*d:(i+1)*d], it.Data[r*d:(r+1)*d])
		}
	}
	w := &model.Weights{Tensors: append([]model.Tensor(nil), f.w.Tensors...)}
	w.Put(model.Tensor{Name: nn.SeqItemsTensor, Shape: []int{len(s.items), d}, Data: emb})
	return w, nil
}

// component is f's recommender on slice s: the states of s's users from
// their events before s's cut-off (computed once per slice).
func (e *env) component(f *seqFit, s *slice) (*model.ModelRecommender, error) {
	if c := f.comps[s]; c != nil {
		return c, nil
	}
	c, err := e.componentFor(f, s, nil)
	if err != nil {
		return nil, err
	}
	if f.comps == nil {
		f.comps = map[*slice]*model.ModelRecommender{}
	}
	f.comps[s] = c
	return c, nil
}

// componentFor is component for the local users in users only (nil: all;
// the others get zero states and must not be asked), not cached.
func (e *env) componentFor(f *seqFit, s *slice, users []int32) (*model.ModelRecommender, error) {
	w, err := f.weightsFor(s)
	if err != nil {
		return nil, err
	}
	tr, err := nn.SeqFromWeights(w, e.cfg.Sequence.BatchSize, sysres.Workers(e.cfg.Train.Workers))
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	seqs := sequencesOf(s.events, s)
	if users != nil {
		only := make([]nn.Sequence, len(seqs))
		for _, u := range users {
			only[u] = seqs[u]
		}
		seqs = only
	}
	return e.seqRecommender(tr, seqs, s, e.popularity(s))
}

// encode is f's weights file with the item rows of slice s.
func (f *seqFit) encode(s *slice) ([]byte, error) {
	w, err := f.weightsFor(s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := model.WriteWeights(&b, w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// loadSequence reads a version's encoder file rel whose item rows follow the
// vocabulary file vocabRel; nil when the version has none.
func (e *env) loadSequence(ctx context.Context, m *tables.Manifest, rel, vocabRel string, in *model.Interactions) (*seqFit, error) {
	if !hasFile(m, rel) {
		return nil, nil
	}
	w, err := e.loadWeights(ctx, m, rel)
	if err != nil {
		return nil, err
	}
	voc, err := e.loadVocab(ctx, m, vocabRel)
	if err != nil {
		return nil, err
	}
	items := make([]int32, voc.Len())
	for r, id := range voc.IDs() {
		items[r] = -1
		if g, ok := in.Items.Lookup(id); ok {
			items[r] = g
		}
	}
	if it, ok := w.Get(nn.SeqItemsTensor); !ok || len(it.Shape) != 2 || it.Shape[0] != len(items) {
		return nil, fmt.Errorf("version %s %s: item embeddings do not match the %d items of %s", m.Version, rel, len(items), vocabRel)
	}
	return &seqFit{w: w, items: items}, nil
}
