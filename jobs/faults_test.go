package jobs

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
	"github.com/shelfml/shelf/io/tables"
)

// TestRunOnS3WithFaults runs the whole pipeline against a real S3 server
// (gofakes3 over HTTP) behind a proxy that fails, resets, truncates or delays
// 10 % of requests. The run must either publish exactly what a clean run
// publishes, or fail retryably; in both cases nothing a reader trusts may be
// incomplete.
func TestRunOnS3WithFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	clean := memBuckets(t)
	if _, err := newRunner(cfg, clean, false).Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := readParts(t, clean.out, cfg.Date, cfg.Score.Shards)

	url, stats := blobstest.StartFaultyS3(t, blobstest.FaultConfig{Seed: 7, FailRate: 0.04, ResetRate: 0.02, TruncateRate: 0.02, DelayRate: 0.02})
	useBucket(t, &cfg, url)
	out, err := blobs.Open(ctx, cfg.Output.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	var last error
	for attempt := 0; attempt < 4; attempt++ {
		r := &Runner{Cfg: cfg, Log: quietLog(), CodeVersion: "test", Now: time.Now}
		_, last = r.Run(ctx)
		if err := tables.Verify(ctx, out, cfg.Name, cfg.Date); err != nil {
			t.Fatalf("attempt %d left untrustworthy output: %v", attempt, err)
		}
		if last == nil {
			break
		}
		if ExitCode(last) != ExitRetryable {
			t.Fatalf("attempt %d: %v (exit %d), want success or a retryable failure", attempt, last, ExitCode(last))
		}
		t.Logf("attempt %d failed retryably: %v", attempt, last)
	}
	t.Logf("proxy: %d requests, %d failed, %d reset, %d truncated, %d delayed", stats.Requests.Load(),
		stats.Failed.Load(), stats.Resets.Load(), stats.Truncated.Load(), stats.Delayed.Load())
	if last != nil {
		t.Fatalf("no attempt completed: %v", last)
	}
	if stats.Faults() == 0 {
		t.Fatal("the proxy injected no fault")
	}
	for i, p := range readParts(t, out, cfg.Date, cfg.Score.Shards) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("part %d differs from the clean run", i)
		}
	}
}

// useBucket points cfg at prefixes of one bucket URL and uploads the sample
// as the events.
func useBucket(t *testing.T, cfg *configs.Config, url string) {
	t.Helper()
	cfg.Events.URL = url + "&prefix=events/"
	cfg.Output.URL = url + "&prefix=out/"
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	evb, err := blobs.Open(ctx, cfg.Events.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer evb.Close()
	if err := blobs.WriteFile(ctx, evb, "online_retail_sample.parquet", data, blobs.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
}
