package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
)

// ErrGateRefused means the quality gate kept LATEST where it was.
var ErrGateRefused = errors.New("quality gate refused the model")

// Run executes the whole pipeline for the as-of date: ingest → split →
// train → evaluate → gate → publish version → score every shard → commit.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	return r.locked(ctx, func(e *env) (*Result, error) { return e.runAll(ctx) })
}

// locked opens the run's buckets, holds the date's lock around fn, and
// releases both afterwards.
func (r *Runner) locked(ctx context.Context, fn func(e *env) (*Result, error)) (*Result, error) {
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	unlock, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return fn(e)
}

func (e *env) runAll(ctx context.Context) (*Result, error) {
	if res, ok := e.alreadyCommitted(ctx); ok {
		return res, e.finishCommit(ctx, res.Version)
	}
	o, err := e.train(ctx)
	if err != nil {
		return nil, err
	}
	res := e.result(o)
	if !o.manifest.Gate.Passed {
		return e.refused(ctx, o, res)
	}
	if err := e.invalidate(ctx); err != nil {
		return nil, err
	}
	n := e.cfg.Score.Shards
	for i := 0; i < n; i++ {
		if _, err := e.scoreShard(ctx, o, i, n); err != nil {
			return nil, err
		}
	}
	if res.PurchasePublished, err = e.commit(ctx, &o.manifest, o.version, n); err != nil {
		return nil, err
	}
	res.Published = true
	res.StageTiming = e.stages.times
	e.writeReport(ctx, res)
	return res, nil
}

// refused ends a run whose ranking model the gate refused: LATEST and the
// recommendations partition stay as they were, but a purchase model that
// passed its own gate still gets its table published (invalidated, scored,
// committed), since the two models are judged separately. The error is
// permanent (exit 2) either way.
func (e *env) refused(ctx context.Context, o *trainOutcome, res *Result) (*Result, error) {
	pub := o.purchase != nil && o.purchase.report.GatePassed
	if pub {
		if err := tables.InvalidatePartition(ctx, e.out, tables.PurchasePredictions, e.cfg.Date); err != nil {
			return nil, err
		}
		n := e.cfg.Score.Shards
		done := e.stages.begin("score")
		for i := 0; i < n; i++ {
			if err := e.scorePurchaseShard(ctx, o, i, n, nil); err != nil {
				return nil, err
			}
		}
		done(slog.Int("shards", n), slog.String("table", tables.PurchasePredictions))
		done = e.stages.begin("commit")
		if _, err := e.commitPurchase(ctx, &o.manifest, o.version, n); err != nil {
			return nil, err
		}
		done(slog.String("version", o.version), slog.String("table", tables.PurchasePredictions))
		res.PurchasePublished = true
	}
	e.writeReport(ctx, res)
	return res, Permanent(fmt.Errorf("%w: %s; LATEST unchanged, version %s kept for inspection; %s", ErrGateRefused,
		o.manifest.Gate.Reason, o.version, purchaseOutcome(o.manifest.Purchase, pub)))
}

// purchaseOutcome says what became of the purchase table of a version whose
// ranking model was refused.
func purchaseOutcome(p *tables.PurchaseSummary, published bool) string {
	switch {
	case published:
		return "purchase predictions published (their model passed its own gate)"
	case p == nil:
		return "no purchase model"
	default:
		return "purchase predictions not published: " + p.GateReason
	}
}

// Train runs ingest → … → gate and publishes the model version, without
// scoring; a gate refusal is a permanent error.
func (r *Runner) Train(ctx context.Context) (*Result, error) {
	return r.locked(ctx, func(e *env) (*Result, error) { return e.trainOnly(ctx) })
}

func (e *env) trainOnly(ctx context.Context) (*Result, error) {
	o, err := e.train(ctx)
	if err != nil {
		return nil, err
	}
	res := e.result(o)
	if !o.manifest.Gate.Passed {
		// score and commit never run after a refusal: train publishes the
		// purchase table itself when that model passed.
		return e.refused(ctx, o, res)
	}
	e.writeReport(ctx, res)
	return res, nil
}

// Score writes one shard of the recommendations table from the version that
// Train published for this date (Kubernetes Indexed Job: one pod per shard).
func (r *Runner) Score(ctx context.Context, shard, shards int) (*Result, error) {
	if shards <= 0 || shard < 0 || shard >= shards {
		return nil, Permanent(fmt.Errorf("score: shard %d of %d is out of range", shard, shards))
	}
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	o, err := e.loadOutcome(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.invalidate(ctx); err != nil {
		return nil, err
	}
	if _, err := e.scoreShard(ctx, o, shard, shards); err != nil {
		return nil, err
	}
	res := e.result(o)
	res.StageTiming = e.stages.times
	return res, nil
}

// Commit checks that every shard is present, writes _SUCCESS and moves LATEST.
func (r *Runner) Commit(ctx context.Context, shards int) (*Result, error) {
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	data, err := e.out.ReadAll(ctx, e.runPrefix()+"version")
	if err != nil {
		return nil, fmt.Errorf("commit: no version trained by run %s for %s (run `shelf train` first): %w", e.run, e.cfg.Date, err)
	}
	id := strings.TrimSpace(string(data))
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
	if err != nil {
		return nil, err
	}
	res := &Result{Date: e.cfg.Date, RunID: e.run, Version: id, VersionURI: e.versionURI(id), Gate: m.Gate, Metrics: m.Metrics,
		TablesURI: e.tablesURI()}
	if !m.Gate.Passed {
		res.PurchasePublished = e.purchaseCommitted(ctx, id)
		what := purchaseOutcome(m.Purchase, res.PurchasePublished)
		if res.PurchasePublished {
			what = "its purchase predictions are committed already (their model passed its own gate)"
		}
		return res, Permanent(fmt.Errorf("commit: version %s did not pass the gate: %s; LATEST unchanged; %s", id, m.Gate.Reason, what))
	}
	if res.PurchasePublished, err = e.commit(ctx, m, id, shards); err != nil {
		return nil, err
	}
	res.Published = true
	return res, nil
}

// invalidate removes the date's _SUCCESS markers before parts are rewritten.
func (e *env) invalidate(ctx context.Context) error {
	for _, t := range []string{tables.Recommendations, tables.PurchasePredictions} {
		if err := tables.InvalidatePartition(ctx, e.out, t, e.cfg.Date); err != nil {
			return err
		}
	}
	return nil
}

// commit writes the tables' _SUCCESS markers, then moves LATEST; it
// reports whether the purchase table was committed.
func (e *env) commit(ctx context.Context, m *tables.Manifest, version string, shards int) (bool, error) {
	done := e.stages.begin("commit")
	purchase, err := e.commitPurchase(ctx, m, version, shards)
	if err != nil {
		return false, err
	}
	s, err := tables.CommitPartition(ctx, e.out, tables.Recommendations, e.cfg.Date, shards, version)
	if err != nil {
		return false, err
	}
	if err := tables.SetLatest(ctx, e.out, e.cfg.Name, version); err != nil {
		return false, err
	}
	done(slog.String("version", version), slog.Int("parts", len(s.Parts)))
	return purchase, nil
}

// commitPurchase writes the purchase table's _SUCCESS when its model
// passed its own gate, and reports whether it did.
func (e *env) commitPurchase(ctx context.Context, m *tables.Manifest, version string, shards int) (bool, error) {
	if m.Purchase == nil {
		return false, nil
	}
	if !m.Purchase.GatePassed {
		e.log.Warn("purchase predictions not published: the purchase model lost to a baseline", "reason", m.Purchase.GateReason)
		return false, nil
	}
	_, err := tables.CommitPartition(ctx, e.out, tables.PurchasePredictions, e.cfg.Date, shards, version)
	return err == nil, err
}

// purchaseCommitted reports whether the date's purchase table is committed with version.
func (e *env) purchaseCommitted(ctx context.Context, version string) bool {
	s, err := tables.ReadSuccess(ctx, e.out, tables.PurchasePredictions, e.cfg.Date)
	return err == nil && s.ModelVersion == version
}

// alreadyCommitted reports a date whose table was committed by a run with the
// same config and code: re-running it would produce the same bytes.
func (e *env) alreadyCommitted(ctx context.Context) (*Result, bool) {
	if e.r.Force {
		return nil, false
	}
	s, err := tables.ReadSuccess(ctx, e.out, tables.Recommendations, e.cfg.Date)
	if err != nil {
		return nil, false
	}
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, s.ModelVersion)
	if err != nil || m.ConfigSHA256 != e.cfgHash || m.CodeVersion != e.r.CodeVersion {
		return nil, false
	}
	e.log.Info("already committed: nothing to do (use --force to recompute)", "version", s.ModelVersion)
	return &Result{Date: e.cfg.Date, RunID: e.run, Version: s.ModelVersion, VersionURI: e.versionURI(s.ModelVersion),
		Gate: m.Gate, Metrics: m.Metrics, Published: true, PurchasePublished: e.purchaseCommitted(ctx, s.ModelVersion), Skipped: true,
		TablesURI: e.tablesURI()}, true
}

// finishCommit moves LATEST to version when a run committed this date's
// tables but died before moving it (commit writes _SUCCESS, then LATEST).
func (e *env) finishCommit(ctx context.Context, version string) error {
	latest, err := tables.Latest(ctx, e.out, e.cfg.Name)
	if err != nil || latest == version {
		return err
	}
	var latestDate string
	if latest != "" {
		m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, latest)
		if err != nil {
			return fmt.Errorf("finish commit: LATEST: %w", err)
		}
		latestDate = m.Date
	}
	if !movesLatestOnRetry(latestDate, e.cfg.Date) {
		return nil
	}
	e.log.Info("finishing an interrupted commit: moving LATEST", "version", version, "from", latest)
	return tables.SetLatest(ctx, e.out, e.cfg.Name, version)
}

// movesLatestOnRetry decides for finishCommit: LATEST moves unless it names
// a later date's version, which a retried backfill of an older date leaves.
func movesLatestOnRetry(latestDate, date string) bool { return latestDate <= date }

// lock takes the run lock for this date; the returned func releases it.
func (e *env) lock(ctx context.Context) (func(), error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), e.run)
	key := "runs/" + e.cfg.Date + "/lock"
	lease := time.Duration(e.cfg.LockLeaseSeconds) * time.Second
	l, err := blobs.AcquireLock(ctx, e.out, key, owner, lease, e.r.Force, e.r.Now)
	if err != nil {
		if errors.Is(err, blobs.ErrLocked) {
			// Retryable: a live holder finishes, a dead one's lease expires.
			return nil, fmt.Errorf("another run holds %s: %w (retry later, or --force to override)", key, err)
		}
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := l.Refresh(ctx); err != nil {
					e.log.Warn("lock refresh failed", "key", key, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		if err := l.Release(context.WithoutCancel(ctx)); err != nil {
			e.log.Warn("lock release failed", "key", key, "err", err)
		}
	}, nil
}

func (e *env) versionURI(id string) string {
	return blobs.Redact(e.cfg.Output.URL) + "#" + tables.VersionPrefix(e.cfg.Name, id)
}

func (e *env) tablesURI() string {
	return blobs.Redact(e.cfg.Output.URL) + "#" + tables.PartitionPrefix(tables.Recommendations, e.cfg.Date)
}

func (e *env) result(o *trainOutcome) *Result {
	return &Result{Date: e.cfg.Date, RunID: e.run, Version: o.version, VersionURI: e.versionURI(o.version),
		Gate: o.manifest.Gate, Metrics: o.manifest.Metrics, TablesURI: e.tablesURI(), Accounting: o.acc, StageTiming: e.stages.times}
}

// writeReport stores runs/<D>/<run>/report.json (best effort: the version
// and tables are already safe, a missing report is logged).
func (e *env) writeReport(ctx context.Context, res *Result) {
	res.StageTiming = e.stages.times
	data, err := json.MarshalIndent(res, "", "  ")
	if err == nil {
		err = e.out.WriteAll(ctx, e.runPrefix()+"report.json", append(data, '\n'), nil)
	}
	if err != nil {
		e.log.Warn("could not write run report", "err", err)
	}
}
