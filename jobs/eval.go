package jobs

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
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
	s := e.newSlice(in, ts.Unix())
	if s.ui.Rows != rm.NUsers || s.ui.Cols != rm.NItems {
		return nil, Permanent(fmt.Errorf("eval: version %s was evaluated on %d users × %d items, the data gives %d × %d (other inputs or config?)",
			version, rm.NUsers, rm.NItems, s.ui.Rows, s.ui.Cols))
	}
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	h := e.newHoldout(in, s, ts.Unix(), e.end.Unix(), withK(cfg.Eval.Ks, gateK))
	seq, err := e.loadSequence(ctx, m, "evaluate/sequence.shlfw", "evaluate/items.parquet", in)
	if err != nil {
		return nil, err
	}
	recs, err := e.recommenders(ctx, s, rm, seq, m.Selection)
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
//
// seq (nil: none) is the sequence encoder fitted for this slice's model:
// in the hybrid with weight sel.Sequence, and reported alone (`sequence`)
// and, when in the hybrid, by the blend without it (`blend_without_sequence`).
func (e *env) recommenders(ctx context.Context, s *slice, m *model.RankingModel, seq *seqFit, sel tables.Selection) ([]namedRecommender, error) {
	pop := e.popularity(s)
	base, err := e.itemKNN(ctx, s, pop)
	if err != nil {
		return nil, err
	}
	nb, hnb := sel.BaselineNeighbors, sel.KNNNeighbors
	if nb == 0 { // versions from before neighbour selection
		nb = e.cfg.Baselines.ItemKNNNeighbors.Max()
	}
	if hnb == 0 {
		hnb = nb
	}
	knn, err := e.knnVariant(base, s, nb, 0)
	if err != nil {
		return nil, err
	}
	compBase := base
	if k := sel.KNNSimilarity; k == "ease" && e.easeSkip(len(s.items)) != "" {
		// chosen on a smaller slice under other limits (an older version, a
		// smaller memory limit): the cosine lists stand in
		e.log.Warn("the item component falls back to cosine", "reason", e.easeSkip(len(s.items)))
	} else if k != "" && k != "cosine" {
		if compBase, err = e.itemModel(ctx, s, pop, itemSimilarity{k, sel.KNNSimilarityParam}, hnb); err != nil {
			return nil, err
		}
	}
	hknn, err := e.knnVariant(compBase, s, hnb, sel.KNNHistoryHalfLife, sel.KNNHistoryHalfLifeEvents)
	if err != nil {
		return nil, err
	}
	neural, err := e.indexed(ctx, model.NewModelRecommender(m, s.ui, e.cfg.Score.Candidates, pop), s, "model")
	if err != nil {
		return nil, err
	}
	var comp *model.ModelRecommender
	if seq != nil {
		if comp, err = e.component(seq, s); err != nil {
			return nil, err
		}
		if comp, err = e.indexed(ctx, comp, s, "sequence"); err != nil {
			return nil, err
		}
	}
	delta := sel.Sequence
	if comp == nil {
		delta = 0
	}
	cand := e.cfg.Score.Candidates
	hybrid := model.NewHybrid(neural, hknn, pop, float32(sel.KNN), float32(sel.Popularity), cand).WithSequence(comp, float32(delta))
	recs := []namedRecommender{{"model", hybrid}, {"neural", neural}, {"popularity", pop}, {"itemknn", knn}, {"itemknn_recency", hknn}}
	if comp != nil {
		recs = append(recs, namedRecommender{"sequence", comp})
	}
	if w := sel.KNN + sel.Popularity + delta; w > 0 && w < 1 {
		// Ablation: the same blend without the neural model's scores, to
		// show what the Gorgonia model adds.
		recs = append(recs, namedRecommender{"blend_without_neural",
			model.NewHybrid(neural, hknn, pop, float32(sel.KNN/w), float32(sel.Popularity/w), cand).WithSequence(comp, float32(delta/w))})
	}
	if delta > 0 {
		// And without the sequence encoder's.
		r := 1 - delta
		recs = append(recs, namedRecommender{"blend_without_sequence",
			model.NewHybrid(neural, hknn, pop, float32(sel.KNN/r), float32(sel.Popularity/r), cand)})
	}
	return recs, nil
}

// hasFile reports whether version m holds the file rel.
func hasFile(m *tables.Manifest, rel string) bool {
	return slices.ContainsFunc(m.Files, func(f tables.FileEntry) bool { return f.Path == rel })
}

// loadWeights reads and decodes a weights file of a published version.
func (e *env) loadWeights(ctx context.Context, m *tables.Manifest, rel string) (*model.Weights, error) {
	data, err := tables.ReadVersionFile(ctx, e.out, m, rel)
	if err != nil {
		return nil, err
	}
	w, err := model.ReadWeights(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("version %s %s: %w", m.Version, rel, err)
	}
	return w, nil
}

// loadVocab reads and decodes a vocabulary file of a published version.
func (e *env) loadVocab(ctx context.Context, m *tables.Manifest, rel string) (*model.Vocab, error) {
	data, err := tables.ReadVersionFile(ctx, e.out, m, rel)
	if err != nil {
		return nil, err
	}
	v, err := tables.DecodeVocab(data)
	if err != nil {
		return nil, fmt.Errorf("version %s %s: %w", m.Version, rel, err)
	}
	return v, nil
}

// loadRanking reads a ranking model file of a published version.
func (e *env) loadRanking(ctx context.Context, m *tables.Manifest, rel string) (*model.RankingModel, error) {
	w, err := e.loadWeights(ctx, m, rel)
	if err != nil {
		return nil, err
	}
	rm, err := model.RankingFromWeights(w)
	if err != nil {
		return nil, fmt.Errorf("version %s %s: %w", m.Version, rel, err)
	}
	return rm, nil
}

// itemKNN builds the ItemKNN similarities on a slice with the configured
// weighting and the largest configured neighbour count; knnVariant derives
// the recommenders actually used from it.
func (e *env) itemKNN(ctx context.Context, s *slice, pop model.Recommender) (*model.ItemKNN, error) {
	ui := s.ui
	if e.cfg.Baselines.ItemKNNWeighting == "binary" {
		ui = s.history(true, 0)
	}
	knn, err := model.NewItemKNN(ctx, ui, e.cfg.Baselines.ItemKNNNeighbors.Max(), pop)
	if err != nil {
		return nil, fmt.Errorf("itemknn: %w", err)
	}
	return knn, nil
}

// knnVariant is base pruned to neighbors, scoring users' history items by
// their weight times a decay of their age (halfLifeDays; 0 = no decay).
func (e *env) knnVariant(base *model.ItemKNN, s *slice, neighbors int, halfLifeDays float64, halfLifeEvents ...float64) (*model.ItemKNN, error) {
	var hist *model.CSR
	hlE := 0.0
	if len(halfLifeEvents) > 0 {
		hlE = halfLifeEvents[0]
	}
	if halfLifeDays > 0 || hlE > 0 {
		hist = s.historyRanked(e.cfg.Baselines.ItemKNNWeighting == "binary", halfLifeDays, hlE)
	}
	v, err := base.Variant(neighbors, hist)
	if err != nil {
		return nil, fmt.Errorf("itemknn: %w", err)
	}
	return v, nil
}

// TableEvalResult scores a published recommendations table against what
// users did after its date.
type TableEvalResult struct {
	Date       string                        `json:"date"`    // the table's as-of date
	Version    string                        `json:"version"` // model version that wrote it
	From       string                        `json:"from"`    // holdout window [from, to)
	To         string                        `json:"to"`
	Dropped    int                           `json:"dropped"`      // targets whose item is new after the date
	TableUsers int                           `json:"table_users"`  // users with a list in the table
	Metrics    map[string]map[string]float64 `json:"metrics"`      // "table" and baselines fit through the date
	Names      []string                      `json:"recommenders"` // row order
}

// EvalTable reads the committed recommendations partition of the
// configured date and scores it on the following days with the holdout
// protocol (targets: items a user bought in the window and had no event with
// before; the user's earlier items excluded from the list), next to the
// baselines fit on the same events through the date. It is how a table is
// judged on data its run never saw, e.g. the retail2 protocol with
// --date 2010-11-08 --forward-days 31.
func (r *Runner) EvalTable(ctx context.Context, days int) (*TableEvalResult, error) {
	if days <= 0 {
		return nil, Permanent(fmt.Errorf("eval: forward days must be positive, got %d", days))
	}
	date := r.Cfg.Date
	day, err := time.Parse("2006-01-02", date)
	if err != nil {
		return nil, Permanent(fmt.Errorf("eval: date %q: %w", date, err))
	}
	fr := *r
	fr.Cfg.Date = day.AddDate(0, 0, days).Format("2006-01-02")
	fr.Cfg.Events.LookbackDays += days // the same training events as the date's run
	e, err := fr.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	succ, err := tables.ReadSuccess(ctx, e.out, tables.Recommendations, date)
	if err != nil {
		return nil, Permanent(fmt.Errorf("eval: no committed recommendations for %s: %w", date, err))
	}
	in, _, _, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	cut := e.end.AddDate(0, 0, -days)
	cfg := e.cfg
	s := e.newSlice(in, cut.Unix())
	_, gateK, _ := configs.ParseMetric(cfg.Gate.Metric)
	h := e.newHoldout(in, s, cut.Unix(), e.end.Unix(), withK(cfg.Eval.Ks, gateK))
	lists := make(map[int32][]model.Scored)
	for _, part := range succ.Parts {
		key := tables.PartitionPrefix(tables.Recommendations, date) + part.Path
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, e.out, key)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		for _, row := range rows {
			gu, ok := in.Users.Lookup(row.UserID)
			gi, ok2 := in.Items.Lookup(row.ItemID)
			if !ok || !ok2 || s.userLocal[gu] < 0 || s.itemLocal[gi] < 0 {
				return nil, Permanent(fmt.Errorf("eval: %s row for user %q item %q: not in the events through %s (other data or config?)",
					key, row.UserID, row.ItemID, date))
			}
			u := s.userLocal[gu]
			lists[u] = append(lists[u], model.Scored{Item: s.itemLocal[gi], Score: -float32(row.Rank)})
		}
	}
	for _, l := range lists {
		sort.SliceStable(l, func(a, b int) bool { return l[a].Score > l[b].Score })
	}
	res := &TableEvalResult{Date: date, Version: succ.ModelVersion, From: cut.UTC().Format(time.RFC3339),
		To: e.end.UTC().Format(time.RFC3339), Dropped: h.dropped, TableUsers: len(lists), Metrics: map[string]map[string]float64{}}
	pop := e.popularity(s)
	base, err := e.itemKNN(ctx, s, pop)
	if err != nil {
		return nil, err
	}
	nb := cfg.Baselines.ItemKNNNeighbors.Max()
	if m, err := tables.OpenVersion(ctx, e.out, cfg.Name, succ.ModelVersion); err == nil && m.Selection.BaselineNeighbors > 0 {
		nb = m.Selection.BaselineNeighbors
	}
	knn, err := e.knnVariant(base, s, nb, 0)
	if err != nil {
		return nil, err
	}
	counts := make([]float32, len(s.items))
	for _, ev := range s.events {
		counts[s.itemLocal[ev.Item]]++
	}
	for _, rec := range []namedRecommender{
		{"table", &tableRecommender{lists: lists}},
		{"popularity", pop},
		{"popularity_counts", model.PopularityOf(counts)},
		{"itemknn", knn},
	} {
		met, err := model.Evaluate(ctx, rec.rec, h.in, 2)
		if err != nil {
			return nil, err
		}
		res.Metrics[rec.name] = met
		res.Names = append(res.Names, rec.name)
	}
	return res, nil
}

// tableRecommender serves published lists (sorted best first), skipping
// excluded items; users without a list get nothing.
type tableRecommender struct{ lists map[int32][]model.Scored }

func (t *tableRecommender) Name() string { return "table" }

func (t *tableRecommender) Recommend(u int32, k int, exclude []int32, dst []model.Scored) []model.Scored {
	n := 0
	for _, x := range t.lists[u] {
		if n == k {
			break
		}
		if _, found := slices.BinarySearch(exclude, x.Item); !found {
			dst = append(dst, x)
			n++
		}
	}
	return dst
}
