package jobs

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

func TestTuneSpaceIsSeededAndKeepsTrialZero(t *testing.T) {
	base := configs.Default().Train
	t0, _ := tuneSpace(base, 42, 0)
	if !reflect.DeepEqual(t0, base) {
		t.Fatalf("trial 0 changed the config: %+v", t0)
	}
	a, pa := tuneSpace(base, 42, 3)
	b, pb := tuneSpace(base, 42, 3)
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(pa, pb) {
		t.Fatal("the same seed and trial drew different settings")
	}
	distinct := map[string]bool{}
	for n := 1; n <= 12; n++ {
		c, p := tuneSpace(base, 42, n)
		cfg := configs.Default()
		cfg.Train = c
		cfg.Date, cfg.Events.URL, cfg.Output.URL = "2024-01-01", "mem://", "mem://"
		if err := cfg.Validate(); err != nil {
			t.Fatalf("trial %d: invalid setting %v: %v", n, p, err)
		}
		js, _ := json.Marshal(p)
		distinct[string(js)] = true
	}
	if len(distinct) < 10 {
		t.Fatalf("12 trials drew only %d distinct settings", len(distinct))
	}
}

// Tune on the bundled sample: every trial is scored on the validation
// window, and the best config is written where it says, loads as a config
// and reproduces the best trial's settings.
func TestTuneWritesReusableBestConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("trains 3 models")
	}
	cfg := testConfig(t)
	cfg.Train.Epochs = 2
	b := memBuckets(t)
	r := newRunner(cfg, b, false)
	res, err := r.Tune(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 3 || res.Best < 0 {
		t.Fatalf("trials %d best %d", len(res.Trials), res.Best)
	}
	for _, tr := range res.Trials {
		if tr.Error != "" || !(tr.Validation > 0) || tr.Epochs < 1 {
			t.Fatalf("trial %+v: want a positive validation score", tr)
		}
		if tr.Validation > res.Trials[res.Best].Validation {
			t.Fatalf("trial %d beats the chosen best %d", tr.N, res.Best)
		}
	}
	data, err := b.out.ReadAll(context.Background(), res.Key)
	if err != nil {
		t.Fatal(err)
	}
	got := configs.Default()
	if err := configs.Decode(data, &got); err != nil {
		t.Fatalf("best config does not load: %v\n%s", err, data)
	}
	want, _ := tuneSpace(cfg.Train, cfg.Seed, res.Best)
	want.Epochs = max(want.Epochs, res.Trials[res.Best].Epochs)
	if !reflect.DeepEqual(got.Train, want) {
		t.Fatalf("best config train section %+v, want %+v", got.Train, want)
	}
	if got.Date != "" || got.Events.URL != "" || got.Output.URL != "" {
		t.Fatalf("best config carries date/URLs: %q %q %q", got.Date, got.Events.URL, got.Output.URL)
	}
	if _, err := b.out.ReadAll(context.Background(), "tuning/"+cfg.Name+"/"+cfg.Date+"/trials.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Tune(context.Background(), 0); err == nil {
		t.Fatal("0 trials accepted")
	}
}

// The forward evaluation of a committed table equals evaluating the
// published model (loaded back from its version) on the days after the
// date, and its baselines equal those fit on the same slice.
func TestEvalTableMatchesPublishedModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.Date = "2011-03-17"
	b := memBuckets(t)
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newRunner(cfg, b, false).EvalTable(ctx, 14)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != res.Version || got.From != "2011-03-18T00:00:00Z" || got.To != "2011-03-31T23:00:00Z" /* London midnight in BST */ {
		t.Fatalf("table %s window [%s, %s), want version %s on [2011-03-18, 2011-04-01) London time", got.Version, got.From, got.To, res.Version)
	}
	// Recompute: the published model on the slice through the date.
	fr := newRunner(cfg, b, false)
	fr.Cfg.Date, fr.Cfg.Events.LookbackDays = "2011-03-31", cfg.Events.LookbackDays+14
	e, err := fr.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, _, _, err := e.ingest(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := e.loadRanking(ctx, m, "weights.shlfw")
	if err != nil {
		t.Fatal(err)
	}
	cut := e.end.AddDate(0, 0, -14).Unix()
	s := newSlice(in, cut, cfg.Train.HalfLifeDays, cfg.Baselines.PopularityHalfLifeDays)
	h := newHoldout(in, s, cut, e.end.Unix(), cfg.Eval.Ks)
	seq, err := e.loadSequence(ctx, m, "sequence.shlfw", "vocab/items.parquet", in)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.recommenders(ctx, s, rm, seq, m.Selection)
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.Evaluate(ctx, recs[0].rec, h.in, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.in.Users) == 0 || want["ndcg@10"] <= 0 {
		t.Fatalf("degenerate holdout: %d users, ndcg %g", len(h.in.Users), want["ndcg@10"])
	}
	for _, k := range []string{"ndcg@10", "recall@10", "hr@10", "users"} {
		if math.Abs(got.Metrics["table"][k]-want[k]) > 1e-12 {
			t.Errorf("table %s %g, published model recomputed %g", k, got.Metrics["table"][k], want[k])
		}
	}
	for _, name := range []string{"popularity", "itemknn"} {
		var r model.Recommender
		for _, x := range recs {
			if x.name == name {
				r = x.rec
			}
		}
		w, err := model.Evaluate(ctx, r, h.in, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got.Metrics[name]["ndcg@10"] != w["ndcg@10"] {
			t.Errorf("%s ndcg@10 %g, want %g", name, got.Metrics[name]["ndcg@10"], w["ndcg@10"])
		}
	}
	if _, err := newRunner(cfg, b, false).EvalTable(ctx, 0); err == nil {
		t.Fatal("0 forward days accepted")
	}
	cfg.Date = "2011-03-10"
	if _, err := newRunner(cfg, b, false).EvalTable(ctx, 7); err == nil {
		t.Fatal("a date without a committed table accepted")
	}
}
