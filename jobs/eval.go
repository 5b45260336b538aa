package jobs

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// EvalResult compares recomputed holdout metrics with the published ones.
type EvalResult struct {
	Version    string                        `json:"version"`
	Metrics    map[string]map[string]float64 `json:"metrics"`    // recomputed now
	Published  map[string]map[string]float64 `json:"published"`  // from the manifest
	Reproduced bool                          `json:"reproduced"` // every published value matches within 1e-9
}

// Eval re-reads the data and a published version (this run's by default)
// and recomputes the holdout metrics of the model and every baseline from
// the version's evaluation weights, with the same protocol as training.
func (r *Runner) Eval(ctx context.Context, version string) (*EvalResult, error) {
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	in, _, inputs, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	if version == "" {
		version = versionID(e.cfg.Date, e.run, inputs)
	}
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, version)
	if err != nil {
		return nil, err
	}
	rm, err := e.loadRanking(ctx, m, "evaluate/weights.shlfw")
	if err != nil {
		return nil, err
	}
	ts, err := time.Parse(time.RFC3339, m.Window.TestStart)
	if err != nil {
		return nil, fmt.Errorf("version %s window: %w", version, err)
	}
	cfg := e.cfg
	s := newSlice(in, ts.Unix(), cfg.Train.HalfLifeDays, cfg.Baselines.PopularityHalfLifeDays)
	if s.ui.Rows != rm.NUsers || s.ui.Cols != rm.NItems {
		return nil, Permanent(fmt.Errorf("eval: version %s was evaluated on %d users × %d items, the data gives %d × %d (other inputs or config?)",
			version, rm.NUsers, rm.NItems, s.ui.Rows, s.ui.Cols))
	}
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	h := newHoldout(in, s, ts.Unix(), e.end.Unix(), withK(cfg.Eval.Ks, gateK))
	recs, err := e.recommenders(ctx, s, rm, m.Selection)
	if err != nil {
		return nil, err
	}
	res := &EvalResult{Version: version, Metrics: map[string]map[string]float64{}, Published: m.Metrics, Reproduced: true}
	for _, rec := range recs {
		met, err := model.Evaluate(ctx, rec.rec, h.in, 2)
		if err != nil {
			return nil, err
		}
		met["test_targets_dropped"] = float64(h.dropped)
		res.Metrics[rec.name] = met
		for k, v := range m.Metrics[rec.name] {
			if math.Abs(met[k]-v) > 1e-9 {
				res.Reproduced = false
			}
		}
	}
	return res, nil
}

type namedRecommender struct {
	name string
	rec  model.Recommender
}

// recommenders are the published hybrid ranker, the neural model alone and
// the baselines, all fit on slice s: the set every evaluation reports.
func (e *env) recommenders(ctx context.Context, s *slice, m *model.RankingModel, sel tables.Selection) ([]namedRecommender, error) {
	pop := e.popularity(s)
	knn, err := e.itemKNN(ctx, s, pop)
	if err != nil {
		return nil, err
	}
	neural := model.NewModelRecommender(m, s.ui, e.cfg.Score.Candidates, pop)
	hybrid := model.NewHybrid(neural, knn, pop, float32(sel.KNN), float32(sel.Popularity), e.cfg.Score.Candidates)
	return []namedRecommender{{"model", hybrid}, {"neural", neural}, {"popularity", pop}, {"itemknn", knn}}, nil
}

// loadRanking reads a ranking model file of a published version.
func (e *env) loadRanking(ctx context.Context, m *tables.Manifest, rel string) (*model.RankingModel, error) {
	data, err := tables.ReadVersionFile(ctx, e.out, m, rel)
	if err != nil {
		return nil, err
	}
	w, err := model.ReadWeights(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("version %s %s: %w", m.Version, rel, err)
	}
	rm, err := model.RankingFromWeights(w)
	if err != nil {
		return nil, fmt.Errorf("version %s %s: %w", m.Version, rel, err)
	}
	return rm, nil
}

// itemKNN builds the ItemKNN baseline on a slice with the configured weighting.
func (e *env) itemKNN(ctx context.Context, s *slice, pop model.Recommender) (*model.ItemKNN, error) {
	ui := s.ui
	if e.cfg.Baselines.ItemKNNWeighting == "binary" {
		b := *s.ui
		b.Val = make([]float32, len(s.ui.Val))
		for i := range b.Val {
			b.Val[i] = 1
		}
		ui = &b
	}
	knn, err := model.NewItemKNN(ctx, ui, e.cfg.Baselines.ItemKNNNeighbors, pop)
	if err != nil {
		return nil, fmt.Errorf("itemknn: %w", err)
	}
	return knn, nil
}
