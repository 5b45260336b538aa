package events

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/synth"
)

// BenchmarkRead ingests the bundled sample from mem:// (rows read per second).
func BenchmarkRead(b *testing.B) {
	bucket := memBucket(b, map[string][]byte{sampleKey: sampleBytes(b)})
	opts := sampleOptions(b)
	b.ReportAllocs()
	b.ResetTimer()
	var rows int64
	for i := 0; i < b.N; i++ {
		_, acct, err := Read(context.Background(), bucket, opts)
		if err != nil {
			b.Fatal(err)
		}
		rows += acct.Read
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReadDecoders ingests two days of shelf gen output (200k-row
// daily files, dictionary-encoded ids) through each decoder.
func BenchmarkReadDecoders(b *testing.B) {
	bucket := memBucket(b, nil)
	end := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	if _, err := synth.Generate(context.Background(), bucket, synth.Options{Events: 400_000, Users: 100_000, Items: 20_000, Days: 2, End: end, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	for _, dec := range []struct {
		name    string
		records bool
	}{{"pages", false}, {"arrow", true}} {
		b.Run(dec.name, func(b *testing.B) {
			opts := Options{Config: synth.EventsConfig(), Skip: []string{synth.CatalogKey}, Start: end.AddDate(0, 0, -1), End: end.AddDate(0, 0, 1), ArrowRecords: dec.records}
			var rows int64
			for b.Loop() {
				_, acct, err := Read(context.Background(), bucket, opts)
				if err != nil {
					b.Fatal(err)
				}
				rows += acct.Read
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestReadSharedDatasets reads the full UCI dumps when SHELF_DATASETS points
// at their directory (datasets/online-retail{,-ii}); it logs the accounting.
func TestReadSharedDatasets(t *testing.T) {
	dir := os.Getenv("SHELF_DATASETS")
	if dir == "" {
		t.Skip("SHELF_DATASETS not set")
	}
	ii := onlineRetailConfig()
	ii.Columns.User, ii.Columns.Price = "Customer ID", "Price"
	ii.Filters[0].Column, ii.Filters[1].Column = "Customer ID", "Invoice"
	cases := []struct {
		name, path string
		cfg        func() Options
	}{
		{"online-retail", "online-retail/online_retail.parquet", func() Options { return Options{Config: onlineRetailConfig()} }},
		{"online-retail-ii", "online-retail-ii/online_retail_II_sheet_2009-2010.parquet", func() Options { return Options{Config: ii} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, c.path))
			if err != nil {
				t.Fatal(err)
			}
			bucket := fileBucket(t, map[string][]byte{filepath.Base(c.path): data})
			opts := c.cfg()
			opts.mem = checkedMem(t)
			opts.End = time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
			opts.Start = opts.End.AddDate(-3, 0, 0)
			opts.Now = opts.End
			start := time.Now()
			in, acct, err := Read(context.Background(), bucket, opts)
			el := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if !acct.Balanced() {
				t.Errorf("not balanced: %+v", acct)
			}
			t.Logf("%s: %.0f rows/s (%v); read=%d used=%d outside=%d dup=%d rejected=%v ratio=%.4f users=%d items=%d",
				c.name, float64(acct.Read)/el.Seconds(), el.Round(time.Millisecond), acct.Read, acct.Used, acct.OutsideWindow,
				acct.Duplicate, acct.Rejected, acct.RejectRatio(), in.Users.Len(), in.Items.Len())
		})
	}
}
