package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shelfml/shelf/jobs"
)

// backfillRow is one date's outcome in the backfill summary.
type backfillRow struct {
	Date     string  `json:"date"`
	Status   string  `json:"status"` // published | skipped | gate_refused | failed
	Version  string  `json:"version,omitempty"`
	Metric   float64 `json:"gate_metric,omitempty"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
	ExitCode int     `json:"exit_code"`
}

// backfillSummary is printed at the end; the exit code is backfillExit's.
type backfillSummary struct {
	From  string        `json:"from"`
	To    string        `json:"to"`
	Dates []backfillRow `json:"dates"`
	code  int
}

func backfill(ctx context.Context, args, environ []string, log *slog.Logger, progress *jobs.Progress) (any, error) {
	var c common
	fs := newFlags("backfill", &c)
	from := fs.String("from", "", "first as-of date (YYYY-MM-DD)")
	to := fs.String("to", "", "last as-of date (YYYY-MM-DD), inclusive")
	parallel := fs.Int("parallel", 1, "dates run at once")
	if err := fs.Parse(args); err != nil {
		return nil, jobs.Permanent(err)
	}
	d0, err1 := time.Parse(time.DateOnly, *from)
	d1, err2 := time.Parse(time.DateOnly, *to)
	if err1 != nil || err2 != nil || d1.Before(d0) || *parallel < 1 {
		return nil, jobs.Permanent(fmt.Errorf("backfill: need --from <= --to as YYYY-MM-DD and --parallel >= 1"))
	}
	base, err := c.settings(environ)
	if err != nil {
		return nil, err
	}
	var dates []string
	for d := d0; !d.After(d1); d = d.AddDate(0, 0, 1) {
		dates = append(dates, d.Format(time.DateOnly))
	}
	sum := &backfillSummary{From: *from, To: *to, Dates: make([]backfillRow, len(dates))}
	var mu sync.Mutex
	failed := 0
	meter := progress.Start(log.With("stage", "backfill"), "backfill "+*from+".."+*to, "dates", int64(len(dates)))
	defer meter.Finish()
	sem := make(chan struct{}, *parallel)
	var wg sync.WaitGroup
	for i, d := range dates {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg := base
			cfg.Date = d
			r := &jobs.Runner{Cfg: cfg, Log: log.With("backfill", true), CodeVersion: version, Force: c.force, Now: time.Now,
				Progress: progress, PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
			start := time.Now()
			res, err := r.Run(ctx)
			row := backfillRow{Date: d, Seconds: time.Since(start).Seconds(), ExitCode: jobs.ExitCode(err)}
			switch {
			case err == nil && res.Skipped:
				row.Status = "skipped"
			case err == nil:
				row.Status = "published"
			case res != nil && !res.Gate.Passed:
				row.Status = "gate_refused"
			default:
				row.Status = "failed"
			}
			if res != nil {
				row.Version, row.Metric = res.Version, res.Gate.Model
			}
			if err != nil {
				row.Error = err.Error()
			}
			mu.Lock()
			sum.Dates[i] = row
			if row.ExitCode != jobs.ExitOK {
				failed++
			}
			nFailed := failed
			mu.Unlock()
			log.Info("backfill date done", "date", d, "status", row.Status, "seconds", int(row.Seconds))
			meter.Add(1, slog.Int("failed", nFailed))
		}()
	}
	wg.Wait()
	meter.Finish()
	log.Info("backfill summary", "dates", len(dates))
	for _, r := range sum.Dates {
		log.Info("backfill date", "date", r.Date, "status", r.Status, "version", r.Version, "seconds", int(r.Seconds), "error", r.Error)
	}
	sum.code = backfillExit(sum.Dates)
	retryable, permanent := sum.count(jobs.ExitRetryable), sum.count(jobs.ExitPermanent)
	switch sum.code {
	case jobs.ExitOK:
		return sum, nil
	case jobs.ExitPermanent:
		return sum, jobs.Permanent(fmt.Errorf("backfill: %d of %d dates failed permanently (a retry would fail them again)", permanent, len(sum.Dates)))
	default:
		return sum, fmt.Errorf("backfill: %d of %d dates failed retryably (and %d permanently): exit 1, so that the Job retries; "+
			"the retry skips the dates already committed", retryable, len(sum.Dates), permanent)
	}
}

// backfillExit is the summary's exit code, read by the Job's
// podFailurePolicy: 1 while any date may pass on a retry (the retry skips
// committed dates and redoes the rest), 2 only when every failed date failed
// permanently, 0 when none failed.
func backfillExit(rows []backfillRow) int {
	code := jobs.ExitOK
	for _, r := range rows {
		switch r.ExitCode {
		case jobs.ExitOK:
		case jobs.ExitPermanent:
			if code == jobs.ExitOK {
				code = jobs.ExitPermanent
			}
		default:
			return jobs.ExitRetryable
		}
	}
	return code
}

func (s *backfillSummary) count(code int) int {
	n := 0
	for _, r := range s.Dates {
		if r.ExitCode == code || code == jobs.ExitRetryable && r.ExitCode != jobs.ExitOK && r.ExitCode != jobs.ExitPermanent {
			n++
		}
	}
	return n
}
