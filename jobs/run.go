package jobs

import (
	"cmp"
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
	return r.locked(ctx, func(ctx context.Context, e *env) (*Result, error) { return e.runAll(ctx) })
}

// locked opens the run's buckets, holds the date's lock around fn — renewed
// by a heartbeat; when it is lost, fn's context is cancelled and every
// trusted write is refused (the fence) — and releases both afterwards.
func (r *Runner) locked(ctx context.Context, fn func(ctx context.Context, e *env) (*Result, error)) (*Result, error) {
	e, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unlock, err := e.acquire(ctx, cancel)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res, err := fn(ctx, e)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, blobs.ErrLockLost) && !errors.Is(err, blobs.ErrLockLost) {
		err = fmt.Errorf("%w (stopped: %w)", err, cause)
	}
	return res, err
}

func (e *env) runAll(ctx context.Context) (*Result, error) {
	if res, ok := e.alreadyCommitted(ctx); ok {
		return res, e.finishCommit(ctx, res)
	}
	o, err := e.train(ctx)
	if err != nil {
		return nil, err
	}
	res := e.result(o)
	if o.manifest.Gate.Source() == "" {
		return e.refused(ctx, o, res)
	}
	n := e.cfg.Score.Shards
	for i := 0; i < n; i++ {
		if _, err := e.scoreShard(ctx, o, i, n); err != nil {
			return nil, err
		}
	}
	if err := e.commit(ctx, &o.manifest, n, res); err != nil {
		return nil, err
	}
	res.Published = true
	res.StageTiming = e.stages.times
	e.writeReport(ctx, res)
	e.noteDecision(&o.manifest)
	return res, nil
}

// noteDecision logs a table that came from a baseline: the job succeeded
// (the shop has its table), the model did not.
func (e *env) noteDecision(m *tables.Manifest) {
	if src := m.Gate.Source(); src != "model" {
		e.log.Warn("the model did not pass: the table was published from a baseline; LATEST unchanged", "table_source", src, "gate", m.Gate.Reason)
	}
}

// refused ends a run whose ranking model the gate refused: LATEST and the
// recommendations partition stay as they were, but a purchase model that
// passed its own gate still gets its table published (scored, committed),
// since the two models are judged separately. The error is permanent (exit
// 2) either way.
func (e *env) refused(ctx context.Context, o *trainOutcome, res *Result) (*Result, error) {
	pub := o.purchase != nil && o.purchase.report.GatePassed
	if pub {
		n := e.cfg.Score.Shards
		done := e.stages.begin("score")
		for i := 0; i < n; i++ {
			if err := e.scorePurchaseShard(ctx, o, i, n, nil); err != nil {
				return nil, err
			}
		}
		done(slog.Int("shards", n), slog.String("table", tables.PurchasePredictions))
		done = e.stages.begin("commit")
		if _, err := e.commitPurchase(ctx, &o.manifest, n); err != nil {
			return nil, err
		}
		done(slog.String("version", o.version), slog.String("table", tables.PurchasePredictions))
		res.PurchasePublished = true
	}
	if err := e.leaveForgottenLatest(ctx, &o.manifest, res); err != nil {
		return nil, err
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
	return r.locked(ctx, func(ctx context.Context, e *env) (*Result, error) { return e.trainOnly(ctx) })
}

func (e *env) trainOnly(ctx context.Context) (*Result, error) {
	o, err := e.train(ctx)
	if err != nil {
		return nil, err
	}
	res := e.result(o)
	if o.manifest.Gate.Source() == "" {
		// No table from this version: score and commit never run after
		// exit 2, so train publishes the purchase table itself when that
		// model passed.
		return e.refused(ctx, o, res)
	}
	e.writeReport(ctx, res)
	e.noteDecision(&o.manifest)
	return res, nil
}

// Score writes one shard of the tables from the version that Train
// published for this date (Kubernetes Indexed Job: one pod per shard). The
// shard is staged under runs/<D>/staged/<version>/, outside tables/: only
// commit moves it where readers look. Shards run concurrently, without the
// date's lock.
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
	if _, err := e.scoreShard(ctx, o, shard, shards); err != nil {
		return nil, err
	}
	res := e.result(o)
	res.StageTiming = e.stages.times
	return res, nil
}

// Commit checks that every shard of the version trained for this date is
// staged and was written by it, commits the tables and moves LATEST (under
// the date's lock).
func (r *Runner) Commit(ctx context.Context, shards int) (*Result, error) {
	return r.locked(ctx, func(ctx context.Context, e *env) (*Result, error) {
		data, err := blobs.ReadFile(ctx, e.out, e.runPrefix()+"version", blobs.DefaultPolicy())
		if blobs.IsNotFound(err) {
			return nil, Permanent(fmt.Errorf("commit: no version trained by run %s for %s: run `shelf train --date %s` with the same config first",
				e.run, e.cfg.Date, e.cfg.Date))
		}
		if err != nil {
			return nil, fmt.Errorf("commit: read the run's version pointer: %w", err)
		}
		id := strings.TrimSpace(string(data))
		m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
		if err != nil {
			return nil, err
		}
		res := &Result{Date: e.cfg.Date, RunID: e.run, Version: id, VersionURI: e.versionURI(id), Gate: m.Gate, Metrics: m.Metrics,
			TablesURI: e.tablesURI(), TableSource: m.Gate.Source()}
		if m.Gate.Source() == "" {
			res.PurchasePublished = e.purchaseCommitted(ctx, id)
			what := purchaseOutcome(m.Purchase, res.PurchasePublished)
			if res.PurchasePublished {
				what = "its purchase predictions are committed already (their model passed its own gate)"
			}
			return res, Permanent(fmt.Errorf("commit: version %s did not pass the gate: %s; LATEST unchanged; %s", id, m.Gate.Reason, what))
		}
		if err := e.commit(ctx, m, shards, res); err != nil {
			return nil, err
		}
		res.Published = true
		e.noteDecision(m)
		return res, nil
	})
}

// commit publishes the version's staged table parts (each partition's
// _SUCCESS replaced in one write), then moves LATEST when it may move.
func (e *env) commit(ctx context.Context, m *tables.Manifest, shards int, res *Result) error {
	done := e.stages.begin("commit")
	purchase, err := e.commitPurchase(ctx, m, shards)
	if err != nil {
		return err
	}
	s, err := tables.CommitPartition(ctx, e.out, tables.Recommendations, e.cfg.Date,
		tables.CommitOptions{Version: m.Version, Shards: shards, Users: m.Users, Source: m.Gate.Source(), Fence: e.fence})
	if err != nil {
		return err
	}
	moved, why := false, "LATEST unchanged: this version's model did not pass its gate ("+m.Gate.Reason+")"
	if m.Gate.Passed {
		if moved, why, err = e.advanceLatest(ctx, m); err != nil {
			return err
		}
	} else if err := e.leaveForgottenLatest(ctx, m, res); err != nil {
		return err
	}
	res.PurchasePublished, res.LatestMoved, res.Latest = purchase, moved, why
	done(slog.String("version", m.Version), slog.Int("parts", len(s.Parts)), slog.Int64("rows", s.Rows),
		slog.Bool("latest_moved", moved), slog.String("latest", why))
	return nil
}

// commitPurchase commits the purchase table when its model passed its own
// gate, and reports whether it did.
func (e *env) commitPurchase(ctx context.Context, m *tables.Manifest, shards int) (bool, error) {
	if m.Purchase == nil {
		return false, nil
	}
	if m.Purchase.Skipped != "" {
		return false, nil
	}
	if !m.Purchase.GatePassed {
		e.log.Warn("purchase predictions not published: the purchase model lost to a baseline", "reason", m.Purchase.GateReason)
		return false, nil
	}
	_, err := tables.CommitPartition(ctx, e.out, tables.PurchasePredictions, e.cfg.Date,
		tables.CommitOptions{Version: m.Version, Shards: shards, Source: "model", Fence: e.fence})
	return err == nil, err
}

// advanceLatest moves LATEST to m's version unless LATEST names a later
// date's version (a backfill never rolls it back) or a version of the same
// date that m's gate did not beat on the same window. It says why.
func (e *env) advanceLatest(ctx context.Context, m *tables.Manifest) (bool, string, error) {
	cur, err := tables.Latest(ctx, e.out, e.cfg.Name)
	if err != nil {
		return false, "", fmt.Errorf("read LATEST: %w", err)
	}
	if cur == m.Version {
		return false, "LATEST is this version already", nil
	}
	if cur != "" {
		lm, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, cur)
		switch {
		case errors.Is(err, tables.ErrNoVersion):
			e.log.Warn("LATEST names a version without a manifest: repointing it", "latest", cur)
		case err != nil:
			return false, "", fmt.Errorf("read LATEST's manifest (%s): %w", cur, err)
		case lm.HoldsForgotten() && !m.HoldsForgotten():
			// Erasure first: whatever its date, LATEST leaves a version
			// that holds users the list erases.
			e.log.Warn("LATEST held erased users: moving it to a version without them", "from", cur, "to", m.Version)
		case lm.Date > m.Date:
			why := fmt.Sprintf("LATEST stays at %s: its as-of date %s is after %s (LATEST only moves forward)", cur, lm.Date, m.Date)
			e.log.Info("LATEST not moved", "reason", why)
			return false, why, nil
		case lm.Date == m.Date && m.Gate.LatestID != cur:
			why := fmt.Sprintf("LATEST stays at %s, of the same date: this version's gate did not compare with it", cur)
			e.log.Info("LATEST not moved", "reason", why)
			return false, why, nil
		}
	}
	if err := tables.SetLatest(ctx, e.out, e.cfg.Name, m.Version, e.fence); err != nil {
		return false, "", err
	}
	return true, "moved from " + cmp.Or(cur, "nothing"), nil
}

// purchaseCommitted reports whether the date's purchase table is committed with version.
func (e *env) purchaseCommitted(ctx context.Context, version string) bool {
	s, err := tables.ReadSuccess(ctx, e.out, tables.PurchasePredictions, e.cfg.Date)
	return err == nil && s.ModelVersion == version
}

// alreadyCommitted reports a date whose table was committed by a run of that
// date with the same config and code: re-running it would produce the same
// bytes. A re-scored table (an earlier date's version, shelf rescore) is not
// the date's own: the nightly run replaces it.
func (e *env) alreadyCommitted(ctx context.Context) (*Result, bool) {
	if e.r.Force {
		return nil, false
	}
	s, err := tables.ReadSuccess(ctx, e.out, tables.Recommendations, e.cfg.Date)
	if err != nil || s.ScoredInputs != "" {
		return nil, false
	}
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, s.ModelVersion)
	if err != nil || m.Date != e.cfg.Date || m.ConfigSHA256 != e.cfgHash || m.CodeVersion != e.r.CodeVersion || m.HoldsForgotten() {
		return nil, false
	}
	if f, err := e.readForget(ctx); err != nil || forgetSHA(f) != forgetSHA256(m) {
		return nil, false // another erasure list: recompute
	}
	e.log.Info("already committed: nothing to do (use --force to recompute)", "version", s.ModelVersion)
	return &Result{Date: e.cfg.Date, RunID: e.run, Version: s.ModelVersion, VersionURI: e.versionURI(s.ModelVersion),
		Gate: m.Gate, Metrics: m.Metrics, Published: true, PurchasePublished: e.purchaseCommitted(ctx, s.ModelVersion), Skipped: true,
		TablesURI: e.tablesURI()}, true
}

// leaveForgottenLatest moves LATEST off a version that holds erased users
// even when this run's model was refused: erasure comes before quality.
func (e *env) leaveForgottenLatest(ctx context.Context, m *tables.Manifest, res *Result) error {
	cur, err := tables.Latest(ctx, e.out, e.cfg.Name)
	if err != nil || cur == "" || cur == m.Version {
		return err
	}
	lm, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, cur)
	if err != nil || !lm.HoldsForgotten() || m.HoldsForgotten() {
		return nil
	}
	e.log.Warn("LATEST held erased users: moved to this version although its model was refused", "from", cur, "to", m.Version)
	if err := tables.SetLatest(ctx, e.out, e.cfg.Name, m.Version, e.fence); err != nil {
		return err
	}
	res.LatestMoved, res.Latest = true, "moved from "+cur+", which holds erased users (erasure before quality)"
	return nil
}

func forgetSHA(f *forgetList) string {
	if f.empty() {
		return ""
	}
	return f.sha256
}

func forgetSHA256(m *tables.Manifest) string {
	if m.Privacy == nil {
		return ""
	}
	return m.Privacy.ForgetList
}

// finishCommit moves LATEST when a run committed this date's tables but
// died before moving it (commit writes _SUCCESS, then LATEST), by the same
// rule as a commit.
func (e *env) finishCommit(ctx context.Context, res *Result) error {
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, res.Version)
	if err != nil {
		return err
	}
	moved, why, err := e.advanceLatest(ctx, m)
	if moved {
		e.log.Info("finished an interrupted commit: moved LATEST", "version", res.Version, "latest", why)
	}
	res.LatestMoved, res.Latest = moved, why
	return err
}

// acquire takes the run lock for this date, waiting up to a lease and a
// third for a holder that stopped renewing (a killed run's lock expires in
// at most one lease), and keeps it renewed; when it is lost, lost cancels
// the run. The returned func stops the heartbeat and releases the lock.
func (e *env) acquire(ctx context.Context, lost context.CancelCauseFunc) (func(), error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), e.run)
	key := "runs/" + e.cfg.Date + "/lock"
	lease := time.Duration(e.cfg.LockLeaseSeconds) * time.Second
	l, err := blobs.AcquireLock(ctx, e.out, key, owner, blobs.LockOptions{Lease: lease, Force: e.r.Force, Wait: lease + lease/3})
	if err != nil {
		if errors.Is(err, blobs.ErrLocked) {
			// Retryable: a live holder finishes (and the retry finds its
			// output), a dead one's lease runs out.
			return nil, fmt.Errorf("another run holds %s: %w (retry later, or --force to take it over)", key, err)
		}
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	e.lock = l
	stop := l.Heartbeat(ctx, func(err error) {
		e.log.Error("run lock lost: stopping before the next write", "key", key, "err", err)
		lost(err)
	}, func(err error) { e.log.Warn("lock refresh failed; retrying", "key", key, "err", err) })
	return func() {
		stop()
		if err := l.Release(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, blobs.ErrLockLost) {
			e.log.Warn("lock release failed", "key", key, "err", err)
		}
	}, nil
}

// fence refuses a trusted write when this run no longer holds its date's
// lock (runs without the lock — score shards — write only staged objects).
func (e *env) fence(ctx context.Context) error {
	if e.lock == nil {
		return nil
	}
	return e.lock.Fence(ctx)
}

func (e *env) versionURI(id string) string {
	return blobs.ObjectURL(e.cfg.Output.URL, tables.VersionPrefix(e.cfg.Name, id))
}

func (e *env) tablesURI() string {
	return blobs.ObjectURL(e.cfg.Output.URL, tables.PartitionPrefix(tables.Recommendations, e.cfg.Date))
}

func (e *env) result(o *trainOutcome) *Result {
	return &Result{Date: e.cfg.Date, RunID: e.run, Version: o.version, VersionURI: e.versionURI(o.version),
		Gate: o.manifest.Gate, Metrics: o.manifest.Metrics, TablesURI: e.tablesURI(), Accounting: o.acc, StageTiming: e.stages.times,
		TableSource: o.manifest.Gate.Source(), Windows: o.windows, Retrieval: e.retrievalOn(o.final), EpochSeconds: epochSeconds(o.history)}
}

// writeReport stores runs/<D>/<run>/report.json (best effort: the version
// and tables are already safe, a missing report is logged).
func (e *env) writeReport(ctx context.Context, res *Result) {
	res.StageTiming = e.stages.times
	data, err := json.MarshalIndent(res, "", "  ")
	if err == nil {
		err = blobs.WriteFile(ctx, e.out, e.runPrefix()+"report.json", append(data, '\n'), blobs.DefaultPolicy())
	}
	if err != nil {
		e.log.Warn("could not write run report", "err", err)
	}
}
