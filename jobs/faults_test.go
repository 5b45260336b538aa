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

// TestFaultSuiteOnMinIO runs the pipeline against a real S3 server (MinIO)
// through a proxy that injects one kind of fault per case: latency, a
// bandwidth limit both ways, connection resets, 503s, truncated bodies,
// blackholed requests, slow closes and upstream stalls beyond the request
// deadline. Every attempt must end in success or a retryable failure (never
// a hang: the test's context bounds it, and never exit 2), leave nothing
// untrustworthy behind, and the run — finished under the fault, or rerun
// after it is removed — must publish the clean run's tables byte for byte.
func TestFaultSuiteOnMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline once per fault")
	}
	blobstest.MinIOEndpoint(t) // skips (or fails under CI) without the server
	ctx := context.Background()
	base := testConfig(t)
	// Short deadlines, so that blackholes and stalls fail fast and retry.
	base.Storage.TimeoutSeconds, base.Storage.MinBytesPerSecond, base.Storage.Attempts = 2, 64<<10, 6
	clean := memBuckets(t)
	if _, err := newRunner(base, clean, false).Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := readParts(t, clean.out, base.Date, base.Score.Shards)
	for _, tc := range []struct {
		name string
		cfg  blobstest.FaultConfig
	}{
		{"latency 40ms", blobstest.FaultConfig{Latency: 40 * time.Millisecond}},
		{"bandwidth 1 MiB/s both ways", blobstest.FaultConfig{BytesPerSecond: 1 << 20}},
		{"connection resets 5%", blobstest.FaultConfig{ResetRate: 0.05}},
		{"503s 5%", blobstest.FaultConfig{FailRate: 0.05}},
		{"truncated bodies 5%", blobstest.FaultConfig{TruncateRate: 0.05}},
		{"blackholes 2%", blobstest.FaultConfig{BlackholeRate: 0.02}},
		{"slow close 5% (1 s)", blobstest.FaultConfig{SlowCloseRate: 0.05, Delay: time.Second}},
		{"upstream stalls 3% (5 s, over the deadline)", blobstest.FaultConfig{DelayRate: 0.03, Delay: 5 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Seed = 11
			url, proxy := blobstest.StartFaultyMinIO(t, tc.cfg)
			cfg := base
			useBucket(t, &cfg, url)
			out, err := blobs.Open(ctx, cfg.Output.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			runCtx, cancel := context.WithTimeout(ctx, 4*time.Minute)
			defer cancel()
			var last error
			for attempt := 0; attempt < 3; attempt++ {
				t0 := time.Now()
				r := &Runner{Cfg: cfg, Log: quietLog(), CodeVersion: "test", Now: time.Now}
				_, last = r.Run(runCtx)
				if runCtx.Err() != nil {
					t.Fatalf("attempt %d hung: still running after the test's deadline (%v)", attempt, last)
				}
				proxy.SetEnabled(false) // read back what readers would see, without faults
				if err := tables.Verify(ctx, out, cfg.Name, cfg.Date); err != nil {
					t.Fatalf("attempt %d left untrustworthy output: %v", attempt, err)
				}
				proxy.SetEnabled(true)
				t.Logf("attempt %d: %s, exit %d (%v)", attempt, time.Since(t0).Round(time.Millisecond), ExitCode(last), last)
				if last == nil {
					break
				}
				if ExitCode(last) != ExitRetryable {
					t.Fatalf("attempt %d: %v (exit %d), want success or a retryable failure", attempt, last, ExitCode(last))
				}
			}
			t.Logf("proxy: %s", proxy.Stats)
			if proxy.Stats.Touched() == 0 {
				t.Fatal("the proxy did nothing")
			}
			if last != nil {
				// The fault removed, a rerun finishes what the faulty attempts left.
				proxy.SetEnabled(false)
				r := &Runner{Cfg: cfg, Log: quietLog(), CodeVersion: "test", Now: time.Now}
				if _, err := r.Run(runCtx); err != nil {
					t.Fatalf("rerun without the fault: %v", err)
				}
			}
			proxy.SetEnabled(false)
			for i, p := range readParts(t, out, cfg.Date, cfg.Score.Shards) {
				if !bytes.Equal(p, want[i]) {
					t.Errorf("part %d differs from the clean run", i)
				}
			}
		})
	}
}
