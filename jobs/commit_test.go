package jobs

import (
	"context"
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

func TestMovesLatestOnRetry(t *testing.T) {
	for _, tc := range []struct {
		latestDate, date string
		want             bool
	}{
		{"", "2011-03-31", true},            // no LATEST yet
		{"2011-03-30", "2011-03-31", true},  // the day before's
		{"2011-03-31", "2011-03-31", true},  // this date's, another config's
		{"2011-04-07", "2011-03-31", false}, // a later date's: a backfill leaves it
	} {
		if got := movesLatestOnRetry(tc.latestDate, tc.date); got != tc.want {
			t.Errorf("movesLatestOnRetry(%q, %q) = %v, want %v", tc.latestDate, tc.date, got, tc.want)
		}
	}
}
