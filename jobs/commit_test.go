package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/tables"
)

// TestRetryFinishesInterruptedCommit: a run killed between the table's
// _SUCCESS and moving LATEST leaves the date committed but LATEST behind;
// the retry must move it, as the uninterrupted run would have.
func TestRetryFinishesInterruptedCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	b := memBuckets(t)
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.out.Delete(ctx, tables.LatestKey(cfg.Name)); err != nil { // the kill
		t.Fatal(err)
	}
	again, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil || !again.Skipped {
		t.Fatalf("retry: %v (skipped %v)", err, again != nil && again.Skipped)
	}
	if latest, err := tables.Latest(ctx, b.out, cfg.Name); err != nil || latest != res.Version {
		t.Fatalf("LATEST = %q, %v after the retry; want %s", latest, err, res.Version)
	}
	if err := tables.Verify(ctx, b.out, cfg.Name, cfg.Date); err != nil {
		t.Fatal(err)
	}
}

// TestLatestOnlyMovesForward runs the sequences a scheduler produces on one
// bucket: the newest date, a backfill of an older one, a same-date rerun
// with a broken config and one with another config. LATEST moves forward in
// as-of date only, and on its own date only to a version that matched it on
// the same window.
func TestLatestOnlyMovesForward(t *testing.T) {
	if testing.Short() {
		t.Skip("trains several models")
	}
	ctx := context.Background()
	b := memBuckets(t)
	newer := testConfig(t)
	res, err := newRunner(newer, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	latest := func() string {
		t.Helper()
		id, err := tables.Latest(ctx, b.out, newer.Name)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	if latest() != res.Version || !res.LatestMoved {
		t.Fatalf("first run: LATEST %s, result %+v", latest(), res)
	}

	// A backfill of an older date commits its own table, LATEST stays.
	older := newer
	older.Date = "2011-03-17"
	old, err := newRunner(older, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := tables.ReadSuccess(ctx, b.out, tables.Recommendations, older.Date); err != nil || s.ModelVersion != old.Version {
		t.Fatalf("backfill's table: %+v %v", s, err)
	}
	if latest() != res.Version || old.LatestMoved || !strings.Contains(old.Latest, "only moves forward") {
		t.Fatalf("backfill moved LATEST to %s (%+v)", latest(), old)
	}

	// A same-date rerun with a broken model is refused against LATEST.
	broken := newer
	broken.Train.LearningRate, broken.Train.Epochs = 1e-9, 1
	broken.Train.BlendKNN, broken.Train.BlendPopularity = []float64{0}, []float64{0}
	bad, err := newRunner(broken, b, false).Run(ctx)
	if ExitCode(err) != ExitPermanent || bad == nil || bad.Gate.LatestID != res.Version {
		t.Fatalf("broken rerun: %v (%+v)", err, bad)
	}
	if latest() != res.Version {
		t.Fatalf("a broken same-date rerun moved LATEST to %s", latest())
	}

	// Another config that matches LATEST within the tolerance replaces it.
	other := newer
	other.Seed, other.Gate.Tolerance = 7, 0.5
	alt, err := newRunner(other, b, false).Run(ctx)
	if err != nil || alt.Gate.LatestID != res.Version {
		t.Fatalf("same-date rerun: %v (%+v)", err, alt)
	}
	if latest() != alt.Version || !alt.LatestMoved {
		t.Fatalf("a same-date version that matched LATEST did not replace it: LATEST %s, result %+v", latest(), alt)
	}
	if err := tables.Verify(ctx, b.out, newer.Name, newer.Date); err != nil {
		t.Fatal(err)
	}
	if err := tables.Verify(ctx, b.out, newer.Name, older.Date); err != nil {
		t.Fatal(err)
	}

	// A LATEST whose manifest cannot be read (here: cut short) fails the
	// run as retryable; the gate never passes by skipping the comparison.
	key := tables.VersionPrefix(newer.Name, alt.Version) + "manifest.json"
	good, err := b.out.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.out.WriteAll(ctx, key, good[:len(good)/2], nil); err != nil {
		t.Fatal(err)
	}
	third := other
	third.Seed = 11
	_, err = newRunner(third, b, false).Run(ctx)
	if ExitCode(err) != ExitRetryable || !strings.Contains(fmt.Sprint(err), "gate: LATEST") {
		t.Fatalf("unreadable LATEST: %v (exit %d), want a retryable gate error", err, ExitCode(err))
	}
	if latest() != alt.Version {
		t.Fatalf("a run that could not read LATEST moved it to %s", latest())
	}
}
