package jobs

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/io/tables"
)

// The synthetic shop's catalog reaches the ranking model as side features
// (category, price decile), is part of the version's inputs, and a missing
// catalog is a clear permanent error.
func TestCatalogSideFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	ctx := context.Background()
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	b, cfg := synthShop(t, "catalog", asOf, synth.Options{Events: 20000, Users: 800, Items: 600, Days: 40, End: asOf, Seed: 5})
	cfg.Purchase.Enabled = false

	r := newRunner(cfg, b, false)
	e, err := r.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, _, inputs, err := e.ingest(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(inputs, func(o tables.InputObject) bool { return o.Key == synth.CatalogKey }) {
		t.Errorf("the catalog is not among the version's inputs: %+v", inputs)
	}
	s := newSlice(in, asOf.Unix(), 0, 14)
	side := e.sideFeatures(s)
	if len(side) != 2 || side[0].Name != "category" || side[1].Name != "price_bucket" || side[1].Values != priceBuckets {
		t.Fatalf("side features %+v", side)
	}
	perBucket := make([]int, priceBuckets)
	for l, g := range s.items {
		c, _ := e.catalog.CategoryOf(g)
		if side[0].Of[l] != c || c < 0 {
			t.Fatalf("item %s: category %d, catalog says %d", in.Items.ID(g), side[0].Of[l], c)
		}
		perBucket[side[1].Of[l]]++
	}
	for k, n := range perBucket {
		if n == 0 {
			t.Errorf("price bucket %d is empty: %v", k, perBucket)
		}
	}

	if _, err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The same data without its catalog: a clear, permanent error.
	if err := b.events.Delete(ctx, synth.CatalogKey); err != nil {
		t.Fatal(err)
	}
	_, err = newRunner(cfg, b, true).Run(ctx)
	if err == nil || ExitCode(err) != ExitPermanent || !strings.Contains(err.Error(), "catalog") {
		t.Fatalf("missing catalog: %v (exit %d), want a permanent catalog error", err, ExitCode(err))
	}
	t.Log(err)
}
