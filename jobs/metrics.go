package jobs

import (
	"context"
	"fmt"
	"github.com/shelfml/shelf/io/blobs"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

// PushMetrics sends one invocation's metrics to a Prometheus Pushgateway
// (job "shelf", grouped by model and command): stage durations, input rows
// per outcome, holdout metrics per recommender, the gate decision, the exit
// code, the run's duration and, on success only, the last-success time —
// the series alerting on a stale nightly job watches.
func PushMetrics(ctx context.Context, url, modelName, command string, res *Result, runErr error, took time.Duration, now time.Time) error {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shelf_" + name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	gauge("run_duration_seconds", "wall time of the invocation").WithLabelValues().Set(took.Seconds())
	gauge("exit_code", "0 ok, 1 retryable, 2 permanent").WithLabelValues().Set(float64(ExitCode(runErr)))
	if runErr == nil {
		gauge("last_success_timestamp_seconds", "unix time of the last successful invocation").WithLabelValues().Set(float64(now.Unix()))
	}
	if res != nil {
		st := gauge("stage_duration_seconds", "wall time per stage", "stage")
		for _, s := range res.StageTiming {
			st.WithLabelValues(s.Stage).Add(s.Seconds)
		}
		if a := res.Accounting; a != nil {
			rows := gauge("input_rows", "input rows by outcome", "outcome")
			rows.WithLabelValues("used").Set(float64(a.Used))
			rows.WithLabelValues("outside_window").Set(float64(a.OutsideWindow))
			rows.WithLabelValues("duplicate").Set(float64(a.Duplicate))
			for reason, n := range a.Rejected {
				rows.WithLabelValues("rejected_" + reason).Set(float64(n))
			}
		}
		mm := gauge("model_metric", "holdout metric per recommender", "recommender", "metric")
		for rec, ms := range res.Metrics {
			for k, v := range ms {
				mm.WithLabelValues(rec, k).Set(v)
			}
		}
		if len(res.Retrieval) > 0 {
			rr := gauge("retrieval_recall", "recall of the exact top score.candidates the table's retrieval measured (1 when exact)", "recommender", "method")
			for _, r := range res.Retrieval {
				v := r.Recall
				if r.Method == "exact" {
					v = 1
				}
				rr.WithLabelValues(r.Recommender, r.Method).Set(v)
			}
		}
		gauge("gate_passed", "1 when the quality gate let the version through").WithLabelValues().Set(one(res.Gate.Passed))
		gauge("purchase_published", "1 when the date's purchase table was committed with the version").WithLabelValues().Set(one(res.PurchasePublished))
	}
	p := push.New(url, "shelf").Gatherer(reg).Grouping("model", modelName).Grouping("command", command)
	if err := p.PushContext(ctx); err != nil {
		return fmt.Errorf("push metrics to %s: %w", blobs.Redact(url), blobs.RedactError(err, url))
	}
	return nil
}

// one is 1 for true, 0 for false.
func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
