package jobs

import (
	"fmt"

	"github.com/shelfml/shelf/jobs/report"
	"github.com/shelfml/shelf/model"
)

// reportUsers bounds the sample of users whose recommendations feed the
// report's score and popularity-bias plots.
const reportUsers = 500

// renderReport builds report.html for a version being published.
func (e *env) renderReport(o *trainOutcome) ([]byte, error) {
	m := o.manifest
	in := report.Input{Name: e.cfg.Name, Version: o.version, Date: e.cfg.Date, GatePassed: m.Gate.Passed, GateReason: m.Gate.Reason,
		Window:  fmt.Sprintf("%s → %s (test from %s)", m.Window.Start, m.Window.End, m.Window.TestStart),
		Metrics: m.Metrics, History: map[string][]report.Epoch{},
		Selection: map[string]float64{"epochs": float64(m.Selection.Epochs), "blend_knn": m.Selection.KNN, "blend_popularity": m.Selection.Popularity}}
	if o.acc != nil {
		in.Accounting = map[string]int64{"read": o.acc.Read, "used": o.acc.Used, "outside_window": o.acc.OutsideWindow, "duplicate": o.acc.Duplicate}
		for k, v := range o.acc.Rejected {
			in.Accounting["rejected "+k] = v
		}
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
		in.Calibration = map[string][]report.Bin{}
		for name, cm := range o.purchase.report.Metrics {
			for _, b := range cm.Reliability {
				in.Calibration[name] = append(in.Calibration[name], report.Bin{MeanPredicted: b.MeanPredicted, Observed: b.Observed, Count: b.Count})
			}
		}
	}
	return report.Render(in)
}
