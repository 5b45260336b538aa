package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
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
		"SHELF_LOCK_LEASE_SECONDS=2", "SHELF_LOG_LEVEL=INFO", // INFO: the stage lines
		"SHELF_SEQUENCE_DIM=8", "SHELF_SEQUENCE_MAX_LEN=12", "SHELF_SEQUENCE_BLOCKS=1", "SHELF_SEQUENCE_EPOCHS=3")
}

// shelfCmd runs the pipeline on the bundled sample into out: a directory,
// or a bucket URL (then the events are read from the sample directory too).
func shelfCmd(bin, out string) *exec.Cmd {
	data, _ := filepath.Abs("../../testdata/online-retail")
	cmd := exec.Command(bin, "run", "--config", "../../configs/online-retail.yaml", "--date", "2011-03-31",
		"--events-url", "file://"+data, "--output-url", outURL(out))
	cmd.Env = smallRunEnv()
	return cmd
}

// runToCompletion retries like Kubernetes would: exit 1 is retried, anything
// else ends it.
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
		default:
			t.Fatalf("run: %v\n%s", err, stderr.String())
		}
	}
	t.Fatalf("run did not complete after 10 attempts; last stderr:\n%s", last)
}

// outURL is out as a bucket URL.
func outURL(out string) string {
	if strings.Contains(out, "://") {
		return out
	}
	return "file://" + out
}

// openOut opens out (a directory or a bucket URL).
func openOut(out string) (*blob.Bucket, error) {
	if strings.Contains(out, "://") {
		return blobs.Open(context.Background(), out)
	}
	return fileblob.OpenBucket(out, nil)
}

// checkTrustworthy asserts that everything a reader would trust is complete.
func checkTrustworthy(t *testing.T, out string) {
	t.Helper()
	b, err := openOut(out)
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

// trustedOutput renders everything a reader trusts in out — LATEST, the
// files of every version with a manifest and the parts of every committed
// partition, each with its checksum — so that two outputs compare byte for
// byte (tables.Verify has checked the checksums against the files).
func trustedOutput(t *testing.T, out string) string {
	t.Helper()
	ctx := context.Background()
	b, err := openOut(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var sb strings.Builder
	latest, err := tables.Latest(ctx, b, "online-retail")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&sb, "LATEST %s\n", latest)
	ids, err := tables.ListVersions(ctx, b, "online-retail")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		m, err := tables.OpenVersion(ctx, b, "online-retail", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m.Files {
			fmt.Fprintf(&sb, "version %s %s %s\n", id, f.Path, f.SHA256)
		}
	}
	for _, table := range []string{tables.Recommendations, tables.PurchasePredictions} {
		s, err := tables.ReadSuccess(ctx, b, table, "2011-03-31")
		if err != nil {
			fmt.Fprintf(&sb, "table %s not committed\n", table)
			continue
		}
		for _, p := range s.Parts {
			fmt.Fprintf(&sb, "table %s %s %s %s\n", table, s.ModelVersion, p.Path, p.SHA256)
		}
	}
	return sb.String()
}

// stageGroup is the part of a run that a stage of jobs' "stage start" log
// lines belongs to; "start" is before the first one (config, lock, or a
// date found already committed).
func stageGroup(stage string) string {
	switch stage {
	case "":
		return "start"
	case "ingest":
		return "ingest"
	case "split", "train", "evaluate", "refit", "recommender", "purchase":
		return "train"
	case "score":
		return "score"
	case "publish_model", "commit":
		return "publish"
	}
	return "other:" + stage
}

// killPoint says when a round signals the run: delay after the first
// "stage start" line of stage, or delay after the start when stage is "".
type killPoint struct {
	sig   syscall.Signal
	stage string
	delay time.Duration
}

// crashRound is what became of one killed attempt.
type crashRound struct {
	point  killPoint
	landed string // stage the run was in when signalled; "" = it ended first
	err    error  // of cmd.Wait
	stderr string
	exitIn time.Duration // from the signal to the process's end
}

// runAndKill runs `shelf run` on out, follows its JSON log lines on stderr
// and signals it at p.
func runAndKill(t *testing.T, bin, out string, p killPoint, extra ...string) crashRound {
	t.Helper()
	cmd := shelfCmd(bin, out)
	cmd.Args = append(cmd.Args, extra...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		current string // last stage started
		landed  string
		armed   bool // the kill is scheduled
		fired   bool
		firedAt time.Time
		exited  bool
		timers  []*time.Timer
	)
	fire := func() {
		mu.Lock()
		defer mu.Unlock()
		if fired || exited {
			return
		}
		fired, landed, firedAt = true, stageGroup(current)+"/"+cmp.Or(current, "-"), time.Now()
		cmd.Process.Signal(p.sig)
	}
	if p.stage == "" {
		armed = true
		timers = append(timers, time.AfterFunc(p.delay, fire))
	}
	var stderr strings.Builder
	sc := bufio.NewScanner(pipe)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		var line struct{ Msg, Stage string }
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "stage start" {
			continue
		}
		mu.Lock()
		current = line.Stage
		if line.Stage == p.stage && !armed {
			armed = true
			timers = append(timers, time.AfterFunc(p.delay, fire))
		}
		mu.Unlock()
	}
	err = cmd.Wait()
	mu.Lock()
	exited = true
	for _, tm := range timers {
		tm.Stop()
	}
	var exitIn time.Duration
	if fired {
		exitIn = time.Since(firedAt)
	}
	mu.Unlock()
	return crashRound{point: p, landed: landed, err: err, stderr: stderr.String(), exitIn: exitIn}
}

// TestCrashSafety kills runs with SIGKILL and SIGTERM at the start of each
// stage (ingest, train, refit, publish, score, commit, after a random delay
// within it) and at random times, checks after each kill that nothing
// trusted is incomplete, and lets every interrupted output directory finish
// with retries: each must hold exactly the trusted output of an
// uninterrupted run. A kill that comes after its attempt ran to the end
// closes that directory (compared too) and the next round starts a fresh
// one. It logs in which stage each kill landed and fails unless every part
// of the run (ingest, train, score, publish) took at least one.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline repeatedly")
	}
	bin := buildShelf(t)
	ref := t.TempDir()
	t0 := time.Now()
	runToCompletion(t, bin, ref)
	whole := time.Since(t0)
	want := trustedOutput(t, ref)

	rng := rand.New(rand.NewPCG(1, 2))
	upTo := func(d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d) + 1)) }
	random := func() time.Duration { return time.Duration(float64(whole) * (0.05 + 0.9*rng.Float64())) }
	kill, term := syscall.SIGKILL, syscall.SIGTERM
	// Stage kills come in run order, so that an attempt resumed after the
	// previous kill still has the stage ahead of it.
	plan := []killPoint{
		{kill, "ingest", 0},
		{term, "train", upTo(2 * time.Second)},
		{kill, "", random()},
		{kill, "train", upTo(2 * time.Second)},
		{term, "refit", upTo(time.Second)},
		{term, "", random()},
		{kill, "publish_model", upTo(200 * time.Millisecond)},
		{term, "score", upTo(time.Second)},
		{kill, "", random()},
		{kill, "score", upTo(time.Second)},
		{term, "publish_model", upTo(200 * time.Millisecond)},
		{kill, "commit", 0}, // commit lasts milliseconds: it often ends first
	}
	out, dirs := t.TempDir(), 1
	finished := func(why string) {
		checkTrustworthy(t, out)
		if got := trustedOutput(t, out); got != want {
			t.Errorf("output directory %d (%s): trusted output differs from the uninterrupted run's\n got:\n%s\nwant:\n%s", dirs, why, got, want)
		}
	}
	var rounds []crashRound
	for i, p := range plan {
		r := runAndKill(t, bin, out, p)
		rounds = append(rounds, r)
		var ee *exec.ExitError
		if r.landed != "" && p.sig == syscall.SIGTERM && errors.As(r.err, &ee) && ee.ExitCode() != 1 && ee.ExitCode() != -1 {
			t.Fatalf("SIGTERM in %s: exit %d, want 1\n%s", r.landed, ee.ExitCode(), r.stderr)
		}
		// Any stage stops within seconds (the pod's grace period is 120 s);
		// a generous bound for a loaded machine, not a timing.
		if r.landed != "" && p.sig == syscall.SIGTERM && r.exitIn > 30*time.Second {
			t.Errorf("SIGTERM in %s: the process took %s to end", r.landed, r.exitIn)
		}
		t.Logf("round %2d, dir %d: %-10v at %-13s +%-6v landed in %-22s exit: %v", i, dirs, p.sig, cmp.Or(p.stage, "(random)"),
			p.delay.Round(time.Millisecond), cmp.Or(r.landed, "(run ended first)"), r.err)
		checkTrustworthy(t, out)
		// The next attempt starts at once, as a retry after an OOM kill
		// does: a killed holder on this host is seen dead, never waited for.
		if strings.Contains(r.stderr, "another run holds") {
			t.Fatalf("round %d: the attempt right after a kill failed on the lock:\n%s", i, r.stderr)
		}
		if r.landed == "" && r.err == nil { // the attempt completed the run
			finished("completed by round " + fmt.Sprint(i))
			out, dirs = t.TempDir(), dirs+1
		}
	}
	runToCompletion(t, bin, out)
	finished("completed by retries")

	// --force reruns of the committed date, killed while they republish it:
	// readers keep trusting what was there (what LATEST and _SUCCESS name is
	// never removed before its replacement is complete), and what is there
	// stays the uninterrupted run's output.
	for i, p := range []killPoint{{sig: kill, stage: "publish_model", delay: upTo(100 * time.Millisecond)}, {sig: term, stage: "publish_model", delay: upTo(300 * time.Millisecond)},
		{sig: kill, stage: "commit"}, {sig: kill, stage: "score", delay: upTo(500 * time.Millisecond)}} {
		r := runAndKill(t, bin, out, p, "--force")
		t.Logf("--force round %d: %-10v at %-13s +%-6v landed in %-22s exit: %v", i, p.sig, p.stage, p.delay.Round(time.Millisecond),
			cmp.Or(r.landed, "(run ended first)"), r.err)
		finished(fmt.Sprintf("after a --force rerun killed in %s", cmp.Or(r.landed, "(run ended first)")))
	}

	// Per-stage table: group, then the stages within it.
	type tally struct {
		kill, term int
		stages     map[string]int
	}
	by := map[string]*tally{}
	for _, r := range rounds {
		g, stage, _ := strings.Cut(cmp.Or(r.landed, "(run ended first)/"), "/")
		if by[g] == nil {
			by[g] = &tally{stages: map[string]int{}}
		}
		if r.point.sig == syscall.SIGKILL {
			by[g].kill++
		} else {
			by[g].term++
		}
		if stage != "" {
			by[g].stages[stage]++
		}
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "%-18s %7s %7s  %s\n", "kills landed in", "SIGKILL", "SIGTERM", "stages")
	for _, g := range slices.Sorted(maps.Keys(by)) {
		var st []string
		for _, s := range slices.Sorted(maps.Keys(by[g].stages)) {
			st = append(st, fmt.Sprintf("%s×%d", s, by[g].stages[s]))
		}
		fmt.Fprintf(&tbl, "%-18s %7d %7d  %s\n", g, by[g].kill, by[g].term, strings.Join(st, " "))
	}
	t.Logf("per stage, over %d output directories:\n%s", dirs, tbl.String())
	for _, g := range []string{"ingest", "train", "score", "publish"} {
		if by[g] == nil {
			t.Errorf("no kill landed in %s", g)
		}
	}
}

// TestKillThenImmediateRetry is the Job's retry after an OOM kill, with the
// default lease: SIGKILL in the middle of training, then at once the same
// command. On the same host the dead holder is seen at once; from another
// node (the lock rewritten as if its holder ran elsewhere) the retry waits
// for the lease to run out, then takes over. Both finish with exit 0 and
// the uninterrupted run's output.
func TestKillThenImmediateRetry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline repeatedly")
	}
	bin := buildShelf(t)
	ref := t.TempDir()
	runToCompletion(t, bin, ref)
	want := trustedOutput(t, ref)
	for _, tc := range []struct {
		name      string
		otherHost bool
		lease     string
		minio     bool
	}{{"same host, default lease", false, "", false}, {"other host, 4 s lease", true, "4", false}, {"MinIO, same host, default lease", false, "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			if tc.minio {
				out = blobstest.MinIOURL(t)
			}
			b, err := openOut(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			env := func(cmd *exec.Cmd) {
				cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "SHELF_LOCK_LEASE_SECONDS=") })
				if tc.lease != "" {
					cmd.Env = append(cmd.Env, "SHELF_LOCK_LEASE_SECONDS="+tc.lease)
				}
			}
			cmd := shelfCmd(bin, out)
			env(cmd)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			const lock = "runs/2011-03-31/lock"
			deadline := time.Now().Add(30 * time.Second)
			for {
				if data, err := b.ReadAll(context.Background(), lock); err == nil && len(data) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the run never took its lock")
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(1500 * time.Millisecond) // into training
			cmd.Process.Kill()
			cmd.Wait()
			if tc.otherHost {
				data, err := b.ReadAll(context.Background(), lock)
				if err != nil {
					t.Fatal(err)
				}
				var body map[string]any
				json.Unmarshal(data, &body)
				body["host"] = "another-node"
				data, _ = json.Marshal(body)
				if err := b.WriteAll(context.Background(), lock, data, nil); err != nil {
					t.Fatal(err)
				}
			}
			retry := shelfCmd(bin, out)
			env(retry)
			var stderr bytes.Buffer
			retry.Stderr = &stderr
			t0 := time.Now()
			if err := retry.Run(); err != nil {
				t.Fatalf("the immediate retry failed: %v\n%s", err, stderr.String())
			}
			t.Logf("retry finished in %s", time.Since(t0).Round(time.Millisecond))
			checkTrustworthy(t, out)
			if got := trustedOutput(t, out); got != want {
				t.Errorf("output differs from the uninterrupted run's\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
