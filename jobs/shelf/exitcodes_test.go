package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/jobs"
)

// baseEnv is the environment without SHELF_* settings or cloud credentials.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHELF_") && !strings.HasPrefix(kv, "AZURE_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestExitCodes runs the command in-process on each class of failure and
// checks the exit code the scheduler acts on: 2 fails the Job or task at
// once, 1 is retried. The README's exit-code table lists these classes.
func TestExitCodes(t *testing.T) {
	// The SDKs read credentials from the process environment: no Azure
	// account (CI's Azurite exports one), dummy AWS keys.
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	for _, k := range []string{"AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING"} {
		t.Setenv(k, "")
	}
	data, _ := filepath.Abs("../../testdata/online-retail")
	events := "file://" + data
	cfg := "../../configs/online-retail.yaml"
	out := "file://" + t.TempDir()
	badKey := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badKey, []byte("events:\n  lookback_day: 30\n"), 0o644)
	common := []string{"--config", cfg, "--date", "2011-03-31"}
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		want  int
		class string // a word the message must contain
	}{
		{"unknown URL scheme", append([]string{"run", "--events-url", "nope://x", "--output-url", out}, common...), nil, 2, "no driver"},
		{"URL without a scheme", append([]string{"run", "--events-url", data, "--output-url", out}, common...), nil, 2, "no scheme"},
		{"events directory missing", append([]string{"run", "--events-url", "file:///nonexistent/shelf", "--output-url", out}, common...), nil, 2, "events.url"},
		{"azblob without an account", append([]string{"run", "--events-url", events, "--output-url", "azblob://container"}, common...), nil, 2, "output.url"},
		{"unknown config key", []string{"run", "--config", badKey, "--date", "2011-03-31", "--events-url", events, "--output-url", out}, nil, 2, "lookback_day"},
		{"invalid date", []string{"run", "--config", cfg, "--date", "2011-02-30", "--events-url", events, "--output-url", out}, nil, 2, "2011-02-30"},
		{"unknown flag", []string{"run", "--bogus"}, nil, 2, "bogus"},
		{"unknown setting in the environment", append([]string{"run", "--events-url", events, "--output-url", out}, common...), []string{"SHELF_TRAIN_EPOHCS=3"}, 2, "SHELF_TRAIN_EPOHCS"},
		{"commit before train", append([]string{"commit", "--events-url", events, "--output-url", out}, common...), nil, 2, "shelf train"},
		{"score before train (a shard started early)", append([]string{"score", "--shard", "0", "--shards", "2", "--events-url", events, "--output-url", out}, common...), nil, 1, "shelf train"},
		{"inspect a date without a table", []string{"inspect", "--config", cfg, "--output-url", out, "--date", "2011-03-31", "--user", "12347"}, nil, 2, "not committed"},
		{"eval a version that does not exist", append([]string{"eval", "--version", "2011-03-31-000000000000", "--events-url", events, "--output-url", out}, common...), nil, 2, "no manifest"},
		{"store unreachable", append([]string{"run", "--events-url", events, "--output-url", "s3://b?endpoint=http://127.0.0.1:1&use_path_style=true&region=us-east-1&disable_https=true"}, common...),
			[]string{"SHELF_STORAGE_ATTEMPTS=2"}, 1, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, append(baseEnv(), tc.env...), &stdout, &stderr)
			if code != tc.want || !strings.Contains(stderr.String(), tc.class) {
				t.Fatalf("exit %d, want %d; stderr must contain %q:\n%s", code, tc.want, tc.class, stderr.String())
			}
		})
	}
}

// TestLockHeldByLiveRunIsRetryable: a second run of a date that a live run
// holds waits for the holder to stop renewing, sees it renew, and exits 1.
func TestLockHeldByLiveRunIsRetryable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l, err := blobs.AcquireLock(ctx, b, "runs/2011-03-31/lock", "another pod", blobs.LockOptions{Lease: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := l.Heartbeat(ctx, func(error) {}, nil)
	defer stop()
	data, _ := filepath.Abs("../../testdata/online-retail")
	var stderr bytes.Buffer
	code := run([]string{"run", "--config", "../../configs/online-retail.yaml", "--date", "2011-03-31", "--events-url", "file://" + data, "--output-url", "file://" + dir},
		append(baseEnv(), "SHELF_LOCK_LEASE_SECONDS=2"), io.Discard, &stderr)
	if code != jobs.ExitRetryable || !strings.Contains(stderr.String(), "being renewed") {
		t.Fatalf("exit %d, want 1 naming a live holder:\n%s", code, stderr.String())
	}
}

// TestCrashIsRetryable: the Go runtime exits 2 on a fatal signal or panic;
// the supervisor turns a child that exits without reporting its code into
// exit 1. SIGQUIT makes the runtime dump its goroutines and exit 2.
func TestCrashIsRetryable(t *testing.T) {
	bin := buildShelf(t)
	out := t.TempDir()
	cmd := shelfCmd(bin, out)
	cmd.Env = append(cmd.Env, "SHELF_TRAIN_EPOCHS=200", "SHELF_TRAIN_PATIENCE=0")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := waitChild(t, cmd.Process.Pid)
	// Signal the child once its pipeline runs (it has logged a stage), not
	// at a fixed delay: a signal in the window between fork and exec, or
	// before the runtime is up, is not the crash this test is about.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), `"stage start"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(child, syscall.SIGQUIT); err != nil {
		t.Fatalf("SIGQUIT to child %d: %v", child, err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if err == nil || !asExit(err, &ee) || ee.ExitCode() != jobs.ExitRetryable || !strings.Contains(stderr.String(), "crashed") {
		t.Fatalf("crashed child: %v, want exit 1 naming the crash:\n%s", err, tail(stderr.String(), 2000))
	}
}

// TestSupervisorForwardsSigterm: SIGTERM to the parent reaches the child,
// which checkpoints and exits 1; killing the parent kills the child.
func TestSupervisorForwardsSigtermAndDiesWithParent(t *testing.T) {
	bin := buildShelf(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			out := t.TempDir()
			cmd := shelfCmd(bin, out)
			cmd.Env = append(cmd.Env, "SHELF_TRAIN_EPOCHS=200", "SHELF_TRAIN_PATIENCE=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			child := waitChild(t, cmd.Process.Pid)
			time.Sleep(500 * time.Millisecond)
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !asExit(err, &ee) {
				t.Fatalf("wait: %v", err)
			}
			if sig == syscall.SIGTERM && ee.ExitCode() != jobs.ExitRetryable {
				t.Fatalf("SIGTERM: exit %d, want 1:\n%s", ee.ExitCode(), tail(stderr.String(), 2000))
			}
			deadline := time.Now().Add(5 * time.Second)
			for syscall.Kill(child, 0) == nil {
				if time.Now().After(deadline) {
					syscall.Kill(child, syscall.SIGKILL)
					t.Fatalf("child %d outlived its parent (%s)", child, sig)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// waitChild returns the PID of the supervisor's child once it runs shelf:
// a child of parent whose environment carries the supervisor's pipe
// descriptor. Not merely the first child listed: on its first start of a
// process the Go runtime forks a short-lived probe of its own (whether
// clone(CLONE_PIDFD) works), and a signal sent to that probe's PID is lost
// (under load, CI picked the probe and the run then finished normally).
func waitChild(t *testing.T, parent int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(parent), "task", "*", "children"))
		for _, f := range tasks {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, field := range strings.Fields(string(data)) {
				pid, _ := strconv.Atoi(field)
				env, err := os.ReadFile(filepath.Join("/proc", field, "environ"))
				if err == nil && pid > 0 && bytes.Contains(append([]byte{0}, env...), []byte("\x00"+supervisedEnv+"=3\x00")) {
					return pid
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d started no shelf child", parent)
	return 0
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestBackfillExit: a backfill's exit code tells the Job whether a retry can
// help. Any retryable date makes it 1 (the retry skips committed dates and
// redoes the rest), only permanent failures make it 2.
func TestBackfillExit(t *testing.T) {
	row := func(code int) backfillRow { return backfillRow{ExitCode: code} }
	for _, tc := range []struct {
		name  string
		codes []int
		want  int
	}{
		{"all published", []int{0, 0}, 0},
		{"one refused by the gate", []int{0, 2, 0}, 2},
		{"one refused, one storage failure", []int{2, 1, 0}, 1},
		{"a crash (137) among permanent ones", []int{2, 137}, 1},
		{"only retryable", []int{1, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rows []backfillRow
			for _, c := range tc.codes {
				rows = append(rows, row(c))
			}
			if got := backfillExit(rows); got != tc.want {
				t.Fatalf("backfillExit(%v) = %d, want %d", tc.codes, got, tc.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
