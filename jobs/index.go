package jobs

import (
	"context"
	"fmt"
	"time"
	"weak"

	"github.com/shelfml/shelf/model"
)

// Users sampled to choose an index's probe count, and as many others to
// measure its recall: the same users in every process that scores the
// slice, so that shards choose the same index.
const indexSampleUsers = 2000

// indexQueries user vectors set the metric the index's k-means runs in.
const indexQueries = 20000

// indexSeed seeds the index's k-means (a version's scoring rebuilds it).
const indexSeed = 0x1df

// Retrieval says how a recommender's candidates were retrieved.
type Retrieval struct {
	Recommender string `json:"recommender"` // model or sequence
	Method      string `json:"method"`      // exact or ivf
	Reason      string `json:"reason,omitempty"`
	model.IndexReport
	// on is the slice the recommender was built on, held weakly: a record
	// must not keep a slice the run has let go (its CSR, ages, lists).
	on weak.Pointer[slice]
}

// retrievalOn is what e recorded for the recommenders built on s.
func (e *env) retrievalOn(s *slice) []Retrieval {
	var out []Retrieval
	for _, r := range e.retrieval {
		if r.on == weak.Make(s) {
			out = append(out, r)
		}
	}
	return out
}

// indexed returns rec retrieving through an IVF index when score.index asks
// for one, and rec itself (exact) otherwise or when the index's recall of
// the exact top score.candidates, measured on users of s that did not
// choose its probe count, falls short of score.min_retrieval_recall. The
// decision and the measurement are recorded under name.
func (e *env) indexed(ctx context.Context, rec *model.ModelRecommender, s *slice, name string) (*model.ModelRecommender, error) {
	cfg := e.cfg.Score
	m := rec.Model()
	out := Retrieval{Recommender: name, Method: "exact", on: weak.Make(s)}
	out.Items, out.Depth = m.NItems, min(cfg.Candidates, m.NItems)
	defer func() { e.retrieval = append(e.retrieval, out) }()
	switch {
	case cfg.Index == "exact":
		out.Reason = "score.index is exact"
		return rec, nil
	case cfg.Index == "auto" && m.NItems < cfg.IndexMinItems:
		out.Reason = "catalog below score.index_min_items"
		return rec, nil
	case m.Dim == 0:
		out.Reason = "no item vectors"
		return rec, nil
	}
	var tune, check []int32
	stride := max(1, len(s.users)/(2*indexSampleUsers))
	for u := 0; u < len(s.users); u += stride {
		if items, _ := s.ui.Row(int32(u)); len(items) == 0 {
			continue
		}
		if len(tune) <= len(check) {
			tune = append(tune, int32(u))
		} else {
			check = append(check, int32(u))
		}
	}
	t0 := time.Now()
	ix, err := model.BuildIVF(ctx, m.Item, m.ItemBias, m.NItems, m.Dim, model.IVFOptions{Seed: indexSeed, Workers: e.scoreWorkers(), Queries: model.QuerySample(m, indexQueries)})
	if err != nil {
		return nil, err
	}
	out.BuildSeconds = time.Since(t0).Seconds()
	out.NList = ix.NList
	probe, tr := rec.TuneProbe(ix, tune, s.exclude, out.Depth, model.TuneTarget(cfg.MinRetrievalRecall))
	out.NProbe, out.Spread, out.TuneRecall = probe.N, probe.Spread, tr
	approx := rec.WithIndex(ix, probe)
	out.Recall, out.ExactSeconds, out.IndexSeconds = model.RetrievalRecall(rec, approx, check, s.exclude, out.Depth)
	out.TuneUsers, out.CheckUsers = len(tune), len(check)
	log := e.log.With("recommender", name, "items", m.NItems, "nlist", ix.NList, "nprobe", out.NProbe,
		"recall", round3(out.Recall), "check_users", len(check), "speedup", round3(out.Speedup()))
	out.Method, out.Reason = indexDecision(cfg.Index, out.NProbe, ix.NList, out.Recall, cfg.MinRetrievalRecall)
	if out.Method != "ivf" {
		log.Warn("retrieval index refused: scoring exactly", "reason", out.Reason, "min_retrieval_recall", cfg.MinRetrievalRecall)
		return rec, nil
	}
	log.Info("retrieval through the IVF index")
	return approx, nil
}

// autoScanShare is the largest share of the catalog an index may scan
// per user under score.index auto: measured by shelf bench --only
// retrieval, an index scanning a third of 50k items ran 1.1× the exact
// scan and one scanning half of 20k items 0.7× (docs/performance.md).
const autoScanShare = 0.3

// indexDecision is whether an index of nlist clusters probed nprobe at a
// time, with the measured recall, serves: "ivf", or "exact" and why. Under
// auto, an index that must scan more than autoScanShare of the clusters is
// not worth it.
func indexDecision(mode string, nprobe, nlist int, recall, minRecall float64) (method, reason string) {
	switch {
	case nprobe >= nlist:
		return "exact", "the recall needs every cluster"
	case recall < minRecall:
		return "exact", fmt.Sprintf("measured recall %.4f below score.min_retrieval_recall %g", recall, minRecall)
	case mode == "auto" && float64(nprobe) > autoScanShare*float64(nlist):
		return "exact", fmt.Sprintf("the recall needs %d of %d clusters: no faster than the exact scan", nprobe, nlist)
	}
	return "ivf", ""
}
