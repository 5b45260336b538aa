package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// latestEval is the current LATEST version measured on this run's test window.
type latestEval struct {
	id      string
	date    string // LATEST's as-of date
	metrics model.Metrics
}

// evaluateLatest measures the version LATEST points to on this run's test
// window. It uses that version's evaluation model (fit before its own test
// window) mapped into this run's ids: users it does not know get a zero
// embedding, items it does not know get a zero embedding and its lowest
// item bias. Baselines in its blend are this run's, fit on the same data.
// LATEST is compared whatever its date — a same-date rerun must beat it —
// unless its evaluation model was fit on part of this test window (its own
// test window starts later: a backfill below a newer LATEST, which LATEST
// then keeps anyway). Nil without a LATEST, when LATEST is this version,
// and when it is not comparable. An unreadable LATEST is an error
// (retryable): the gate never passes by skipping the comparison.
func (e *env) evaluateLatest(ctx context.Context, in *model.Interactions, s *slice, testStart int64, h holdout, self string) (*latestEval, error) {
	id, err := tables.Latest(ctx, e.out, e.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("gate: read LATEST: %w", err)
	}
	if id == "" || id == self {
		return nil, nil
	}
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
	if errors.Is(err, tables.ErrNoVersion) {
		// Nothing a reader trusts is there: commit repoints LATEST.
		e.log.Warn("LATEST names a version without a manifest: the gate compares with baselines only", "latest", id)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gate: LATEST %s: %w", id, err)
	}
	if m.HoldsForgotten() {
		e.log.Warn("LATEST holds erased users: not a bar for this version, and replaced when it passes", "latest", id)
		return nil, nil
	}
	ts, err := time.Parse(time.RFC3339, m.Window.TestStart)
	if err != nil {
		return nil, fmt.Errorf("gate: LATEST %s: manifest window: %w", id, err)
	}
	if ts.Unix() > testStart {
		e.log.Info("LATEST not comparable on this window: its evaluation model saw part of it", "latest", id, "latest_date", m.Date)
		return nil, nil
	}
	if !hasFile(m, "evaluate/weights.shlfw") {
		e.log.Warn("LATEST predates evaluation models: the gate compares with baselines only", "latest", id)
		return nil, nil
	}
	old, err := e.loadRanking(ctx, m, "evaluate/weights.shlfw")
	if err != nil {
		return nil, fmt.Errorf("gate: LATEST %s: %w", id, err)
	}
	var vocabs [2]*model.Vocab
	for k, rel := range []string{"evaluate/users.parquet", "evaluate/items.parquet"} {
		if vocabs[k], err = e.loadVocab(ctx, m, rel); err != nil {
			return nil, fmt.Errorf("gate: LATEST %s: %w", id, err)
		}
	}
	mapped := remap(old, vocabs[0], vocabs[1], in, s)
	// Its encoder's item rows are mapped by id; its states come from this
	// window's histories (the encoder reads events, not user ids).
	seq, err := e.loadSequence(ctx, m, "evaluate/sequence.shlfw", "evaluate/items.parquet", in)
	if err != nil {
		return nil, fmt.Errorf("gate: LATEST %s: %w", id, err)
	}
	recs, err := e.recommenders(ctx, s, mapped, blended(seq, m.Selection), m.Selection)
	if err != nil {
		return nil, err
	}
	met, err := model.Evaluate(ctx, recs[0].rec, h.in, 2)
	if err != nil {
		return nil, err
	}
	e.log.Info("LATEST evaluated on this window", "latest", id, "metrics", met)
	return &latestEval{id: id, date: m.Date, metrics: met}, nil
}

// remap copies old's embeddings into slice s's index space.
func remap(old *model.RankingModel, users, items *model.Vocab, in *model.Interactions, s *slice) *model.RankingModel {
	d := old.Dim
	m := &model.RankingModel{Dim: d, NUsers: len(s.users), NItems: len(s.items), Layers: old.Layers,
		User: make([]float32, len(s.users)*d), Item: make([]float32, len(s.items)*d), ItemBias: make([]float32, len(s.items))}
	for u, g := range s.users {
		if j, ok := users.Lookup(in.Users.ID(g)); ok && int(j) < old.NUsers {
			copy(m.User[u*d:(u+1)*d], old.UserVec(j))
		}
	}
	cold := float32(0) // the lowest bias LATEST gave any item: how it would rank an unknown one
	for i, b := range old.ItemBias {
		if i == 0 || b < cold {
			cold = b
		}
	}
	for i, g := range s.items {
		if j, ok := items.Lookup(in.Items.ID(g)); ok && int(j) < old.NItems {
			copy(m.Item[i*d:(i+1)*d], old.ItemVec(j))
			m.ItemBias[i] = old.ItemBias[j]
		} else {
			m.ItemBias[i] = cold
		}
	}
	return m
}

// gateAgainstLatest also requires the model not to be worse than LATEST.
func gateAgainstLatest(g tables.GateResult, cfg configs.GateConfig, key string, l *latestEval) tables.GateResult {
	v := l.metrics[key]
	g.Latest, g.LatestID = &v, l.id
	bar := v * (1 - cfg.Tolerance)
	if g.Model < bar {
		if g.Passed {
			g.Reason = fmt.Sprintf("model %s %.4f < %.4f (LATEST %s %.4f on the same window, tolerance %.0f%%; it beats the best baseline, %s %.4f)",
				key, g.Model, bar, l.id, v, 100*cfg.Tolerance, g.BestBaseline, g.Baseline)
		} else {
			g.Reason += fmt.Sprintf("; and < LATEST %s %.4f", l.id, v)
		}
		g.Passed = false
	} else {
		g.Reason += fmt.Sprintf("; >= LATEST %s %.4f", l.id, v)
	}
	return g
}
