package jobs

import (
	"fmt"
	"sort"

	"github.com/shelfml/shelf/jobs/report"
	"github.com/shelfml/shelf/model"
)

// reportUsers bounds the sample of users whose recommendations feed the
// report's score and popularity-bias plots.
const reportUsers = 500

// renderReport builds report.html for a version being published.
func (e *env) renderReport(o *trainOutcome) ([]byte, error) {
	m := o.manifest
	sel := m.Selection
	in := report.Input{Name: e.cfg.Name, Version: o.version, Date: e.cfg.Date,
		Decision: report.Decision{Source: m.Gate.Source(), Passed: m.Gate.Passed, Reason: m.Gate.Reason, Metric: m.Gate.Metric,
			TestUsers: m.Gate.TestUsers, Evidence: sel.Evidence,
			Similarity: itemSimilarity{orCosine(sel.KNNSimilarity), sel.KNNSimilarityParam}.String()},
		Window:  fmt.Sprintf("%s → %s (data from %s)", m.Window.TestStart, m.Window.End, m.Window.Start),
		Metrics: m.Metrics, History: map[string][]report.Epoch{},
		Selection: []report.Row{
			{Name: "epochs", Value: fmt.Sprint(sel.Epochs)},
			{Name: "blend", Value: fmt.Sprintf("neural %.2f, item component %.2f, popularity %.2f", 1-sel.KNN-sel.Popularity, sel.KNN, sel.Popularity)},
			{Name: "item component", Value: fmt.Sprintf("%s, %d neighbours, history half-life %g days, %s",
				itemSimilarity{orCosine(sel.KNNSimilarity), sel.KNNSimilarityParam}, sel.KNNNeighbors, sel.KNNHistoryHalfLife, rankHalfLife(sel.KNNHistoryHalfLifeEvents))},
			{Name: "ItemKNN baseline", Value: fmt.Sprintf("%d neighbours", sel.BaselineNeighbors)},
		}}
	switch {
	case m.Gate.Passed && in.Decision.Source == "model":
		in.Decision.Latest = "moves to this version once its table is committed (only forward in as-of date)"
	case in.Decision.Source != "":
		in.Decision.Latest = "stays where it was: only a model that passed its gate becomes LATEST"
	}
	if w := m.Window; w.Source != "" {
		in.Windows = w.Source
		if w.Reason != "" {
			in.Windows += ": " + w.Reason
		}
	}
	if o.acc != nil {
		a := o.acc
		in.Accounting = []report.Row{{Name: "read", Value: fmt.Sprint(a.Read)}, {Name: "used", Value: fmt.Sprint(a.Used)},
			{Name: "outside the window", Value: fmt.Sprint(a.OutsideWindow)}, {Name: "duplicates", Value: fmt.Sprint(a.Duplicate)}}
		if a.Forgotten > 0 {
			in.Accounting = append(in.Accounting, report.Row{Name: "forgotten (erasure list)", Value: fmt.Sprint(a.Forgotten)})
		}
		reasons := make([]string, 0, len(a.Rejected))
		for k := range a.Rejected {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		for _, k := range reasons {
			in.Accounting = append(in.Accounting, report.Row{Name: "rejected: " + k, Value: fmt.Sprint(a.Rejected[k])})
		}
	}
	if ps := m.Purchase; ps != nil && ps.Skipped != "" {
		in.Purchase = &report.Purchase{Skipped: ps.Skipped}
	}
	for phase, hist := range o.history {
		for _, h := range hist {
			in.History[phase] = append(in.History[phase], report.Epoch{Epoch: h.Epoch, Loss: h.Loss, Validation: h.Validation})
		}
	}
	s := o.final
	in.TrainItemCounts = make([]float64, len(s.items))
	in.RecItemCounts = make([]float64, len(s.items))
	for _, it := range s.ui.Idx {
		in.TrainItemCounts[it]++
	}
	n := min(reportUsers, len(s.users))
	users := make([]int32, n)
	for i := range users {
		users[i] = int32(i * len(s.users) / n)
	}
	out := make([][]model.Scored, n)
	o.rec.RecommendBlock(users, e.cfg.Score.K, nil, out)
	for _, recs := range out {
		for _, r := range recs {
			in.Scores = append(in.Scores, float64(r.Score))
			in.RecItemCounts[r.Item]++
		}
	}
	if o.purchase != nil {
		pr := o.purchase.report
		in.Purchase = &report.Purchase{Passed: pr.GatePassed, Reason: pr.GateReason, Metrics: map[string]map[string]float64{}}
		for name, cm := range pr.Metrics {
			in.Purchase.Metrics[name] = map[string]float64{"auc": cm.AUC, "pr_auc": cm.PRAUC, "log_loss": cm.LogLoss, "brier": cm.Brier, "ece": cm.ECE}
		}
		in.Calibration = map[string][]report.Bin{}
		for name, cm := range o.purchase.report.Metrics {
			for _, b := range cm.Reliability {
				in.Calibration[name] = append(in.Calibration[name], report.Bin{MeanPredicted: b.MeanPredicted, Observed: b.Observed, Count: b.Count})
			}
		}
	}
	return report.Render(in)
}

// rankHalfLife describes the item component's recency-rank half-life.
func rankHalfLife(h float64) string {
	if h == 0 {
		return "no recency-rank decay"
	}
	return fmt.Sprintf("recency-rank half-life %g events", h)
}
