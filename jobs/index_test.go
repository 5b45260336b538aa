package jobs

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/synth"
	"gocloud.dev/blob/memblob"
)

// A run on a catalog large enough for the index serves the model's
// candidates through it, reports the recall it measured, and the staged
// train → score shards → commit sequence rebuilds the same index and
// writes the same bytes.
func TestIndexedScoring(t *testing.T) {
	if testing.Short() {
		t.Skip("trains twice")
	}
	ctx := context.Background()
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	so := synth.Options{Events: 60000, Users: 3000, Items: 4000, Days: 40, End: asOf, Seed: 9}
	b, cfg := synthShop(t, "indexed", asOf, so)
	cfg.Purchase.Enabled = false
	cfg.Score.Candidates, cfg.Score.Shards = 50, 2
	cfg.Score.Index, cfg.Score.MinRetrievalRecall = "ivf", 0.95
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var model *Retrieval
	for i, r := range res.Retrieval {
		if r.Recommender == "model" {
			model = &res.Retrieval[i]
		}
	}
	if model == nil {
		t.Fatalf("no retrieval report for the model: %+v", res.Retrieval)
	}
	if model.Method != "ivf" || model.Recall < 0.95 || model.NProbe >= model.NList || model.CheckUsers == 0 || model.Items == 0 {
		t.Fatalf("model retrieval %+v: want the index with recall >= 0.95", *model)
	}
	t.Logf("retrieval: %+v", res.Retrieval)
	staged := buckets{events: b.events, out: memblob.OpenBucket(nil)}
	if _, err := newRunner(cfg, staged, false).Train(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := newRunner(cfg, staged, false).Score(ctx, i, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newRunner(cfg, staged, false).Commit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want := readParts(t, b.out, cfg.Date, 2)
	for i, p := range readParts(t, staged.out, cfg.Date, 2) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("part %d scored by a shard differs from the run's", i)
		}
	}

	// auto on a catalog below score.index_min_items: exact, and says so.
	cfg.Score.Index, cfg.Score.IndexMinItems = "auto", 1_000_000
	res, err = newRunner(cfg, buckets{events: b.events, out: memblob.OpenBucket(nil)}, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Retrieval) == 0 {
		t.Fatal("no retrieval report")
	}
	for _, r := range res.Retrieval {
		if r.Method != "exact" || !strings.Contains(r.Reason, "index_min_items") {
			t.Errorf("%+v: want exact below index_min_items", r)
		}
	}
}

func TestIndexDecision(t *testing.T) {
	for _, c := range []struct {
		mode          string
		nprobe, nlist int
		recall, min   float64
		want, reason  string
	}{
		{"auto", 10, 100, 0.995, 0.99, "ivf", ""},
		{"ivf", 10, 100, 0.99, 0.99, "ivf", ""},
		{"auto", 10, 100, 0.985, 0.99, "exact", "below score.min_retrieval_recall"},
		{"ivf", 100, 100, 1, 0.99, "exact", "every cluster"},
		{"auto", 40, 100, 0.995, 0.99, "exact", "no faster"},
		{"ivf", 40, 100, 0.995, 0.99, "ivf", ""},
	} {
		m, r := indexDecision(c.mode, c.nprobe, c.nlist, c.recall, c.min)
		if m != c.want || (c.reason == "") != (r == "") || !strings.Contains(r, c.reason) {
			t.Errorf("%+v: got %s %q", c, m, r)
		}
	}
}
