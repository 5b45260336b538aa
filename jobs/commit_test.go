package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/blobs"
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

// TestRerunThatDoesNotReproduce: a rerun whose files differ from the version
// published under the same id (as on a CPU family that rounds the kernels'
// last bits otherwise) never rewrites a version that LATEST or a table
// names; one that nothing names yet (killed between publishing and
// committing) is withdrawn and published again whole.
func TestRerunThatDoesNotReproduce(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the models three times")
	}
	ctx := context.Background()
	cfg := testConfig(t)
	b := memBuckets(t)
	res, err := newRunner(cfg, b, false).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := tables.VersionPrefix(cfg.Name, res.Version) + "manifest.json"
	// The published version as another machine wrote it: same sizes, other bytes.
	other := func() []byte {
		t.Helper()
		data, err := b.out.ReadAll(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var m tables.Manifest
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for i := range m.Files {
			if m.Files[i].Path == "weights.shlfw" {
				m.Files[i].SHA256 = strings.Repeat("0", 64)
			}
		}
		data, _ = json.MarshalIndent(m, "", "  ")
		if err := b.out.WriteAll(ctx, key, data, nil); err != nil {
			t.Fatal(err)
		}
		return data
	}
	published := other()
	_, err = newRunner(cfg, b, true).Run(ctx)
	if !errors.Is(err, tables.ErrNotReproduced) || !strings.Contains(err.Error(), "weights.shlfw") || !strings.Contains(err.Error(), "LATEST") {
		t.Fatalf("--force rerun over a version LATEST names: %v", err)
	}
	if got, _ := b.out.ReadAll(ctx, key); !bytes.Equal(got, published) {
		t.Error("the refused rerun changed the published manifest")
	}
	if latest, _ := tables.Latest(ctx, b.out, cfg.Name); latest != res.Version {
		t.Errorf("LATEST = %q", latest)
	}
	if _, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version); err != nil {
		t.Errorf("the refused rerun left the version unreadable: %v", err)
	}

	// Killed after publishing, before committing: nothing names the version.
	for _, k := range []string{tables.LatestKey(cfg.Name), tables.SuccessKey(tables.Recommendations, cfg.Date), tables.SuccessKey(tables.PurchasePredictions, cfg.Date)} {
		if err := b.out.Delete(ctx, k); err != nil && !blobs.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	if again, err := newRunner(cfg, b, false).Run(ctx); err != nil || again.Version != res.Version || !again.Published {
		t.Fatalf("retry over an unnamed version that differs: %v", err)
	}
	if err := tables.Verify(ctx, b.out, cfg.Name, cfg.Date); err != nil {
		t.Fatal(err)
	}
	m, err := tables.OpenVersion(ctx, b.out, cfg.Name, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tables.ReadVersionFile(ctx, b.out, m, "weights.shlfw"); err != nil {
		t.Errorf("the republished version does not check out: %v", err)
	}
}
