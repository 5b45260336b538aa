package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/shelfml/shelf/model"
	"github.com/shelfml/shelf/model/nn"
)

// The sequence encoder (model/nn.SeqTrainer) is measured by `shelf eval
// --protocol P --sequence` next to the published hybrid and the baselines;
// runs do not use it yet.

// sequenceOptions are the encoder's settings for a measurement. Time-gap
// embeddings are off: measured with them, leave-one-out NDCG@10 fell on
// both logs that have them (Online Retail II 0.0310 → 0.0165, the synthetic
// sequential shop 0.2315 → 0.2261; docs/quality.md).
func (e *env) sequenceOptions() nn.SeqOptions {
	return nn.SeqOptions{Dim: 32, MaxLen: 50, Heads: 2, Blocks: 2, Epochs: 40, BatchSize: 128,
		LearningRate: 0.005, Dropout: 0.2, Patience: 3, Seed: uint64(e.cfg.Seed)}
}

// sequencesOf is each local user's events of ev (time order) before s's
// cutoff, with the slice's local item indices and each event's time-gap
// bucket.
func sequencesOf(ev []model.Event, s *slice) []nn.Sequence {
	seqs := make([]nn.Sequence, len(s.users))
	prev := make([]int64, len(s.users))
	for _, x := range ev {
		if x.TS >= s.cutoff {
			continue
		}
		u, i := s.userLocal[x.User], s.itemLocal[x.Item]
		if u < 0 || i < 0 {
			continue
		}
		gap := int64(-1) // the user's first event
		if len(seqs[u].Items) > 0 {
			gap = x.TS - prev[u]
		}
		prev[u] = x.TS
		seqs[u].Items = append(seqs[u].Items, i)
		seqs[u].Types = append(seqs[u].Types, x.Type)
		seqs[u].Gaps = append(seqs[u].Gaps, nn.GapBucket(gap))
	}
	return seqs
}

// seqRecommender ranks every item by its dot product with the user's state;
// users without a sequence get the fallback's list.
type seqRecommender struct {
	tr       *nn.SeqTrainer
	states   []float32
	has      []bool
	dim      int
	items    int
	fallback model.Recommender
}

func newSeqRecommender(tr *nn.SeqTrainer, seqs []nn.Sequence, dim, items int, fallback model.Recommender) (*seqRecommender, error) {
	st, err := tr.States(seqs)
	if err != nil {
		return nil, err
	}
	r := &seqRecommender{tr: tr, states: st, has: make([]bool, len(seqs)), dim: dim, items: items, fallback: fallback}
	for u, s := range seqs {
		r.has[u] = len(s.Items) > 0
	}
	return r, nil
}

func (r *seqRecommender) Name() string { return "sequence" }

func (r *seqRecommender) Recommend(u int32, k int, exclude []int32, dst []model.Scored) []model.Scored {
	if int(u) >= len(r.has) || !r.has[u] {
		return r.fallback.Recommend(u, k, exclude, dst)
	}
	st := r.states[int(u)*r.dim : int(u+1)*r.dim]
	top := model.NewTopK(k)
	for i := range int32(r.items) {
		if _, ex := slices.BinarySearch(exclude, i); ex {
			continue
		}
		top.Push(i, r.tr.Score(st, i))
	}
	return top.Sorted(dst)
}

// measureSequence fits the encoder on sSel's sequences with early stopping
// on hVal, refits on sEval's for the best epoch count, and measures it on
// hTest (measure nil = full ranking).
func (e *env) measureSequence(ctx context.Context, in *model.Interactions, evSel, evEval []model.Event, sSel, sEval *slice,
	hVal, hTest holdout, gateKey string, measure func(model.Recommender) (model.Metrics, error)) (model.Metrics, map[string]any, error) {
	t0 := time.Now()
	o := e.sequenceOptions()
	seqSel := sequencesOf(evSel, sSel)
	valIn := hVal.subsample(maxValidationUsers)
	popSel := e.popularity(sSel)
	o.Validate = func(m *nn.SeqTrainer, epoch int) (float64, error) {
		rec, err := newSeqRecommender(m, seqSel, o.Dim, len(sSel.items), popSel)
		if err != nil {
			return 0, err
		}
		met, err := model.Evaluate(ctx, rec, valIn, 2)
		e.log.Info("sequence epoch", slog.Int("epoch", epoch), slog.Float64("validation", met[gateKey]))
		return met[gateKey], err
	}
	tr, err := nn.NewSeqTrainer(len(sSel.items), len(in.Types), o)
	if err != nil {
		return nil, nil, err
	}
	best, epochs, err := tr.Train(ctx, seqSel)
	tr.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("sequence (select): %w", err)
	}
	o.Validate, o.Epochs = nil, max(1, epochs)
	tr, err = nn.NewSeqTrainer(len(sEval.items), len(in.Types), o)
	if err != nil {
		return nil, nil, err
	}
	defer tr.Close()
	seqEval := sequencesOf(evEval, sEval)
	if _, _, err := tr.Train(ctx, seqEval); err != nil {
		return nil, nil, fmt.Errorf("sequence (evaluate): %w", err)
	}
	rec, err := newSeqRecommender(tr, seqEval, o.Dim, len(sEval.items), e.popularity(sEval))
	if err != nil {
		return nil, nil, err
	}
	if measure == nil {
		measure = func(r model.Recommender) (model.Metrics, error) { return model.Evaluate(ctx, r, hTest.in, 2) }
	}
	met, err := measure(rec)
	info := map[string]any{"sequence_epochs": epochs, "sequence_validation": best, "sequence_seconds": time.Since(t0).Seconds(),
		"sequence_settings": fmt.Sprintf("dim %d, %d positions, %d blocks, %d heads, dropout %g, lr %g", o.Dim, o.MaxLen, o.Blocks, o.Heads, o.Dropout, o.LearningRate)}
	return met, info, err
}
