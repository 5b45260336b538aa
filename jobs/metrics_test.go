package jobs

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/shelfml/shelf/io/events"
)

func TestPushMetrics(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	families := map[string]*dto.MetricFamily{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err != nil {
				break
			}
			families[mf.GetName()] = &mf
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	res := &Result{StageTiming: []StageTiming{{Stage: "ingest", Seconds: 1.5}, {Stage: "train", Seconds: 30}},
		Accounting: &events.Accounting{Used: 90, Duplicate: 4, Rejected: map[string]int64{"null_user": 6}},
		Metrics:    map[string]map[string]float64{"model": {"ndcg@10": 0.11}}}
	res.Gate.Passed = true
	res.Retrieval = []Retrieval{{Recommender: "model", Method: "ivf"}, {Recommender: "sequence", Method: "exact"}}
	res.Retrieval[0].Recall = 0.993
	now := time.Unix(1700000000, 0)
	if err := PushMetrics(context.Background(), srv.URL, "online-retail", "run", res, nil, 42*time.Second, now); err != nil {
		t.Fatal(err)
	}
	// the client orders grouping labels by map iteration: either order is
	// the same Pushgateway group
	if len(paths) != 1 || (paths[0] != "PUT /metrics/job/shelf/model/online-retail/command/run" &&
		paths[0] != "PUT /metrics/job/shelf/command/run/model/online-retail") {
		t.Fatalf("requests %v", paths)
	}
	value := func(name string, labels ...string) float64 {
		mf := families[name]
		if mf == nil {
			t.Fatalf("no %s; have %v", name, len(families))
		}
	next:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Fatalf("%s%v not found", name, labels)
		return 0
	}
	for _, c := range []struct {
		got, want float64
	}{
		{value("shelf_stage_duration_seconds", "stage", "train"), 30},
		{value("shelf_input_rows", "outcome", "rejected_null_user"), 6},
		{value("shelf_model_metric", "recommender", "model", "metric", "ndcg@10"), 0.11},
		{value("shelf_gate_passed"), 1},
		{value("shelf_retrieval_recall", "recommender", "model", "method", "ivf"), 0.993},
		{value("shelf_retrieval_recall", "recommender", "sequence", "method", "exact"), 1},
		{value("shelf_purchase_published"), 0},
		{value("shelf_last_success_timestamp_seconds"), 1700000000},
		{value("shelf_run_duration_seconds"), 42},
		{value("shelf_exit_code"), 0},
	} {
		if c.got != c.want {
			t.Errorf("got %v want %v", c.got, c.want)
		}
	}
	// A failed run reports its exit code and no last-success time.
	families = map[string]*dto.MetricFamily{}
	if err := PushMetrics(context.Background(), srv.URL, "m", "run", nil, Permanent(errors.New("bad")), time.Second, now); err != nil {
		t.Fatal(err)
	}
	if families["shelf_last_success_timestamp_seconds"] != nil || value("shelf_exit_code") != 2 {
		t.Fatal("failed run pushed a success time or the wrong exit code")
	}
	if err := PushMetrics(context.Background(), "http://127.0.0.1:1", "m", "run", nil, nil, 0, now); err == nil || !strings.Contains(err.Error(), "push metrics") {
		t.Fatalf("unreachable gateway: %v", err)
	}
}
