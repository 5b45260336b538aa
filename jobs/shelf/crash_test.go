package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/tables"
)

// buildShelf compiles the command once per test binary run.
func buildShelf(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shelf")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// smallRunEnv makes a whole run take seconds: a short window, a small model,
// checkpoints every second and a 2-second lock lease.
func smallRunEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHELF_") { // e.g. SHELF_TEST_AZURITE is not a setting
			env = append(env, kv)
		}
	}
	return append(env,
		"SHELF_EVENTS_LOOKBACK_DAYS=75", "SHELF_TRAIN_DIM=16", "SHELF_TRAIN_HIDDEN=32,32", "SHELF_TRAIN_EPOCHS=3",
		"SHELF_TRAIN_BATCH_SIZE=1024", "SHELF_SCORE_SHARDS=3", "SHELF_TRAIN_CHECKPOINT_SECONDS=1",
		"SHELF_LOCK_LEASE_SECONDS=2", "SHELF_LOG_LEVEL=WARN")
}

func shelfCmd(bin, out string) *exec.Cmd {
	data, _ := filepath.Abs("../../testdata/online-retail")
	cmd := exec.Command(bin, "run", "--config", "../../configs/online-retail.yaml", "--date", "2011-03-31",
		"--events-url", "file://"+data, "--output-url", "file://"+out)
	cmd.Env = smallRunEnv()
	return cmd
}

// runToCompletion retries like Kubernetes would: exit 1 is retried (after
// the lock lease), anything else ends it.
func runToCompletion(t *testing.T, bin, out string) {
	t.Helper()
	var last string
	for attempt := 0; attempt < 10; attempt++ {
		var stderr bytes.Buffer
		cmd := shelfCmd(bin, out)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			last = stderr.String()
			time.Sleep(2500 * time.Millisecond)
		default:
			t.Fatalf("run: %v\n%s", err, stderr.String())
		}
	}
	t.Fatalf("run did not complete after 10 attempts; last stderr:\n%s", last)
}

// checkTrustworthy asserts that everything a reader would trust is complete.
func checkTrustworthy(t *testing.T, out string) {
	t.Helper()
	b, err := fileblob.OpenBucket(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := tables.Verify(context.Background(), b, "online-retail", "2011-03-31"); err != nil {
		t.Fatal(err)
	}
	if latest, _ := tables.Latest(context.Background(), b, "online-retail"); latest != "" {
		if _, err := tables.ReadSuccess(context.Background(), b, tables.Recommendations, "2011-03-31"); err != nil {
			t.Fatalf("LATEST moved before the table was committed: %v", err)
		}
	}
}

func tableParts(t *testing.T, out string) [][]byte {
	t.Helper()
	b, err := fileblob.OpenBucket(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var parts [][]byte
	for i := 0; i < 3; i++ {
		data, err := b.ReadAll(context.Background(), tables.PartKey(tables.Recommendations, "2011-03-31", i, 3))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, data)
	}
	return parts
}

// TestCrashSafety kills runs with SIGKILL and SIGTERM at random points
// (ingest, training, scoring, publishing), checks after each kill that
// nothing trusted is incomplete, then lets the run finish and expects the
// output of an uninterrupted run.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline repeatedly")
	}
	bin := buildShelf(t)
	ref := t.TempDir()
	t0 := time.Now()
	runToCompletion(t, bin, ref)
	whole := time.Since(t0)
	want := tableParts(t, ref)

	out := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 6; i++ {
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		// Kill points spread over the whole run, later each round.
		at := time.Duration(float64(whole) * (0.1 + 0.9*rng.Float64()))
		cmd := shelfCmd(bin, out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(at, func() { cmd.Process.Signal(sig) })
		err := cmd.Wait()
		timer.Stop()
		var ee *exec.ExitError
		if sig == syscall.SIGTERM && errors.As(err, &ee) && ee.ExitCode() != 1 && ee.ExitCode() != -1 {
			t.Fatalf("SIGTERM at %v: exit %d, want 1\n%s", at, ee.ExitCode(), stderr.String())
		}
		t.Logf("round %d: %v at %v: %v %s", i, sig, at.Round(time.Millisecond), err, lastLine(stderr.String()))
		checkTrustworthy(t, out)
		if sig == syscall.SIGKILL {
			time.Sleep(2100 * time.Millisecond) // the killed run's lock lease
		}
	}
	runToCompletion(t, bin, out)
	checkTrustworthy(t, out)
	for i, p := range tableParts(t, out) {
		if !bytes.Equal(p, want[i]) {
			t.Errorf("part %d differs from the uninterrupted run", i)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
