package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/io/tables"
)

// TestRunDegenerateData runs the whole pipeline on mem:// over inputs that
// are valid but degenerate — the malformed corpus cases that need the
// pipeline rather than the reader. Never a panic, the accounting balances,
// LATEST never moves. A window without events is a clear permanent error
// (exit 2); one user or one item leaves no evidence to prefer a model, so
// the table comes from a baseline and says so (exit 0).
func TestRunDegenerateData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline")
	}
	asOf := time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		gen  synth.Options
		want string // in the permanent error
	}{
		// A holdout target is an item a user bought in the test window, had
		// not touched in training, and someone else had: one user or one
		// item leaves none, whatever the window.
		{"single_user", synth.Options{Events: 3000, Users: 1, Items: 200, Days: 60, End: asOf, Seed: 1}, ""},
		{"single_item", synth.Options{Events: 3000, Users: 200, Items: 1, Days: 60, End: asOf, Seed: 1}, ""},
		{"zero_row_window", synth.Options{Events: 3000, Users: 200, Items: 200, Days: 30, End: asOf.AddDate(0, 0, -200), Seed: 1},
			"ingest: no events in window [2024-01-02, 2024-04-01)"},
		{"empty_bucket", synth.Options{}, "ingest: no events in window [2024-01-02, 2024-04-01)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b, cfg := synthShop(t, "degenerate", asOf, tc.gen)
			cfg.Purchase.Epochs = 2

			res, err := newRunner(cfg, b, false).Run(ctx)
			if res != nil && res.Accounting != nil && !res.Accounting.Balanced() {
				t.Errorf("accounting does not balance: %+v", res.Accounting)
			}
			if tc.want == "" {
				if err != nil || res.TableSource == "model" || res.TableSource == "" || !strings.Contains(res.Gate.Reason, "too little evidence") {
					t.Fatalf("Run: %v; table from %q (%s), want a baseline's table on too little evidence", err, res.TableSource, res.Gate.Reason)
				}
				t.Log(res.Gate.Reason)
			} else {
				var pe *PermanentError
				var de *events.DataError
				if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitPermanent || !(errors.As(err, &pe) || errors.As(err, &de)) {
					t.Fatalf("Run: %v (exit %d), want a permanent error containing %q", err, ExitCode(err), tc.want)
				}
				t.Log(err)
			}
			if latest, _ := tables.Latest(ctx, b.out, cfg.Name); latest != "" {
				t.Errorf("LATEST moved to %s without a model that passed", latest)
			}
		})
	}
}
