package jobs

import (
	"context"
	"os"
	"testing"
)

// TestIngestSkipsCatalog: a catalog kept in the events bucket is not read as
// events (its columns are not the dump's, so reading it would fail).
func TestIngestSkipsCatalog(t *testing.T) {
	ctx := context.Background()
	b := memBuckets(t)
	cat, err := os.ReadFile("../testdata/malformed/catalog_rows.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.events.WriteAll(ctx, "catalog/dt=2011-03-30/items.parquet", cat, nil); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Catalog.Path = "catalog"
	e, err := newRunner(cfg, b, false).open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	_, acc, _, err := e.ingest(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc.Files) != 1 || acc.Files[0].Key != "online_retail_sample.parquet" {
		t.Errorf("ingest read %+v, want only the sample", acc.Files)
	}
}
