package jobs

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/tables"
)

// TestRescore: a version fitted on D1 scores D2's events without a refit:
// users first seen after D1 get the model's lists, LATEST stays, a rerun on
// the same inputs changes nothing, D2's own nightly table is kept unless
// forced, and a version of a later date is refused.
func TestRescore(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models")
	}
	ctx := context.Background()
	b := memBuckets(t)
	cfg := testConfig(t)
	cfg.Date = "2011-03-17"
	cfg.Sequence.Blend = []float64{0.3} // the encoder's states are part of what a re-score recomputes
	first, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Gate.Passed {
		t.Fatalf("the first run's model did not pass: %s", first.Gate.Reason)
	}
	cfg2 := cfg
	cfg2.Date = "2011-03-31"
	res, err := newRunner(cfg2, b, false).Rescore(ctx, "", 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != first.Version || res.LatestMoved {
		t.Fatalf("rescore used %s (want LATEST %s), LATEST moved %v", res.Version, first.Version, res.LatestMoved)
	}
	s, err := tables.ReadSuccess(ctx, b.out, tables.Recommendations, cfg2.Date)
	if err != nil {
		t.Fatal(err)
	}
	if s.ModelVersion != first.Version || s.ScoredInputs == "" || len(s.Parts) != 2 {
		t.Fatalf("_SUCCESS %+v: want version %s, a re-score's inputs and 2 parts", s, first.Version)
	}
	if err := tables.Verify(ctx, b.out, cfg.Name, cfg2.Date); err != nil {
		t.Fatal(err)
	}
	if l, _ := tables.Latest(ctx, b.out, cfg.Name); l != first.Version {
		t.Fatalf("LATEST %s, want %s", l, first.Version)
	}
	// Users whose first event came after 2011-03-17 have rows from the model.
	e, err := newRunner(cfg2, b, false).open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, _, _, err := e.ingest(ctx, false)
	e.close()
	if err != nil {
		t.Fatal(err)
	}
	firstSeen := map[string]int64{}
	for _, x := range in.Events {
		if id := in.Users.ID(x.User); firstSeen[id] == 0 {
			firstSeen[id] = x.Time()
		}
	}
	cut := e.end.AddDate(0, 0, -14).Unix() // the end of 2011-03-17
	var rows []tables.RecommendationRow
	for _, p := range s.Parts {
		r, err := tables.ReadAll[tables.RecommendationRow](ctx, b.out, tables.PartitionPrefix(tables.Recommendations, cfg2.Date)+p.Path)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r...)
	}
	newUsers, lists := map[string]bool{}, map[string][]string{}
	for _, r := range rows {
		if r.ModelVersion != first.Version || r.Source != "model" {
			t.Fatalf("row %+v: want version %s, source model", r, first.Version)
		}
		if firstSeen[r.UserID] >= cut {
			newUsers[r.UserID] = true
		}
		lists[r.UserID] = append(lists[r.UserID], r.ItemID)
	}
	if len(newUsers) < 5 {
		t.Fatalf("%d users first seen after %s got rows, want 5+", len(newUsers), cfg.Date)
	}
	distinct := map[string]bool{}
	for u := range newUsers {
		distinct[strings.Join(lists[u], ",")] = true
	}
	if len(distinct) < len(newUsers)/2 {
		t.Fatalf("%d new users share %d lists: not personalised", len(newUsers), len(distinct))
	}
	// A rerun on the same inputs is a no-op.
	before := readParts(t, b.out, cfg2.Date, 2)
	if _, err := newRunner(cfg2, b, false).Rescore(ctx, first.Version, 2, false); err != nil {
		t.Fatal(err)
	}
	for i, p := range readParts(t, b.out, cfg2.Date, 2) {
		if !bytes.Equal(p, before[i]) {
			t.Fatalf("part %d changed on a rerun with the same inputs", i)
		}
	}
	// D2's own nightly version: its table stays unless forced.
	night, err := newRunner(cfg2, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := tables.ReadSuccess(ctx, b.out, tables.Recommendations, cfg2.Date); night.Skipped || !strings.HasPrefix(night.Version, cfg2.Date) || s.ModelVersion != night.Version {
		t.Fatalf("the nightly run after a re-score (%s, skipped %v) left the table of %s", night.Version, night.Skipped, s.ModelVersion)
	}
	if _, err := newRunner(cfg2, b, false).Rescore(ctx, first.Version, 2, false); ExitCode(err) != ExitPermanent || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("rescore over the date's own table: %v, want a permanent error naming --force", err)
	}
	if s, _ := tables.ReadSuccess(ctx, b.out, tables.Recommendations, cfg2.Date); s.ModelVersion != night.Version {
		t.Fatalf("the nightly table was replaced by %s", s.ModelVersion)
	}
	if _, err := newRunner(cfg2, b, false).Rescore(ctx, first.Version, 2, true); err != nil {
		t.Fatal(err)
	}
	// A version fitted after the date is refused.
	cfg3 := cfg
	cfg3.Date = "2011-03-10"
	if _, err := newRunner(cfg3, b, false).Rescore(ctx, night.Version, 1, false); ExitCode(err) != ExitPermanent || !strings.Contains(err.Error(), "after") {
		t.Fatalf("rescore with a later version: %v", err)
	}
}
