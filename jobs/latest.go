package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// latestEval is the current LATEST version measured on this run's test window.
type latestEval struct {
	id      string
	metrics model.Metrics
}

// evaluateLatest measures the version LATEST points to on this run's test
// window. It uses that version's evaluation model (fit before its own test
// window, so before ours when its date is not after ours) mapped into this
// run's ids: users it does not know get a zero embedding, items it does not
// know get a zero embedding and its lowest item bias. Baselines in its blend are this run's, fit on
// the same data. Nil when there is no LATEST, it is this version, it is
// dated after this run (a backfill), or it predates `shelf eval` files.
func (e *env) evaluateLatest(ctx context.Context, in *model.Interactions, s *slice, testStart int64, h holdout) (*latestEval, error) {
	id, err := tables.Latest(ctx, e.out, e.cfg.Name)
	if err != nil || id == "" {
		return nil, err
	}
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
	if err != nil {
		e.log.Warn("LATEST unreadable: gate compares with baselines only", "latest", id, "err", err)
		return nil, nil
	}
	ts, err := time.Parse(time.RFC3339, m.Window.TestStart)
	if err != nil || ts.Unix() > testStart || m.Date >= e.cfg.Date {
		e.log.Info("LATEST not comparable on this window", "latest", id, "latest_date", m.Date)
		return nil, nil
	}
	old, err := e.loadRanking(ctx, m, "evaluate/weights.shlfw")
	if err != nil {
		e.log.Warn("LATEST has no readable evaluation model: gate compares with baselines only", "latest", id, "err", err)
		return nil, nil
	}
	var vocabs [2]*model.Vocab
	for k, rel := range []string{"evaluate/users.parquet", "evaluate/items.parquet"} {
		data, err := tables.ReadVersionFile(ctx, e.out, m, rel)
		if err != nil {
			return nil, err
		}
		if vocabs[k], err = tables.DecodeVocab(data); err != nil {
			return nil, fmt.Errorf("LATEST %s %s: %w", id, rel, err)
		}
	}
	mapped := remap(old, vocabs[0], vocabs[1], in, s)
	recs, err := e.recommenders(ctx, s, mapped, m.Selection)
	if err != nil {
		return nil, err
	}
	met, err := model.Evaluate(ctx, recs[0].rec, h.in, 2)
	if err != nil {
		return nil, err
	}
	e.log.Info("LATEST evaluated on this window", "latest", id, "metrics", met)
	return &latestEval{id: id, metrics: met}, nil
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
		g.Passed = false
		g.Reason = fmt.Sprintf("model %s %.4f < %.4f (LATEST %s %.4f on the same window, tolerance %.0f%%)", key, g.Model, bar, l.id, v, 100*cfg.Tolerance)
	} else {
		g.Reason += fmt.Sprintf("; >= LATEST %s %.4f", l.id, v)
	}
	return g
}
