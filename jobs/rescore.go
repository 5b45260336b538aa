package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// Rescore writes and commits the recommendations table of the date from a
// version fitted on an earlier date (version "" = LATEST), applied to the
// events through this date: the model is not refit. Every user with any
// history through the date gets a list — users first seen after the
// version's date included — from the parts of the hybrid that read the
// history (the item component, the sequence encoder's states, popularity,
// all computed on this date's events) and the neural model, whose users
// and items are mapped by id (one it never saw gets its item prior). This
// is how a shop refits nightly and re-scores hourly. LATEST does not move
// (no model is published) and the purchase table is left as it is. Under
// the date's lock; a rerun on the same inputs is a no-op, on newer inputs
// it replaces the table. A date whose table comes from its own version (a
// nightly run of that date) is kept unless force.
func (r *Runner) Rescore(ctx context.Context, version string, shards int, force bool) (*Result, error) {
	if shards <= 0 {
		return nil, Permanent(fmt.Errorf("rescore: %d shards", shards))
	}
	return r.locked(ctx, func(ctx context.Context, e *env) (*Result, error) {
		done := e.stages.begin("rescore")
		if version == "" {
			v, err := tables.Latest(ctx, e.out, e.cfg.Name)
			if err != nil {
				return nil, fmt.Errorf("rescore: read LATEST: %w", err)
			}
			if v == "" {
				return nil, Permanent(fmt.Errorf("rescore: no LATEST for %s yet: run `shelf run` first, or name a version with --version", e.cfg.Name))
			}
			version = v
		}
		m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, version)
		if err != nil {
			return nil, err
		}
		switch {
		case m.Date > e.cfg.Date:
			return nil, Permanent(fmt.Errorf("rescore: version %s was fitted on %s, after %s", version, m.Date, e.cfg.Date))
		case !m.Gate.Passed:
			return nil, Permanent(fmt.Errorf("rescore: version %s did not pass its gate (%s): its model publishes no table", version, m.Gate.Reason))
		}
		if s, err := tables.ReadSuccess(ctx, e.out, tables.Recommendations, e.cfg.Date); err == nil && s.ScoredInputs == "" && s.ModelVersion != version &&
			strings.HasPrefix(s.ModelVersion, e.cfg.Date+"-") && !force {
			return nil, Permanent(fmt.Errorf("rescore: %s's table comes from its own version %s, fitted on that date; a re-score with %s (of %s) would replace it: pass --force to do so",
				e.cfg.Date, s.ModelVersion, version, m.Date))
		} else if err != nil && !errors.Is(err, tables.ErrNotCommitted) {
			return nil, err
		}
		o, err := e.rescoreOutcome(ctx, m)
		if err != nil {
			return nil, err
		}
		done(slog.String("version", version), slog.String("fitted_on", m.Date), slog.Int("users", len(o.final.users)), slog.String("inputs", o.tag))
		for shard := range shards {
			if _, err := e.scoreShard(ctx, o, shard, shards); err != nil {
				return nil, err
			}
		}
		commit := e.stages.begin("commit")
		s, err := tables.CommitPartition(ctx, e.out, tables.Recommendations, e.cfg.Date, tables.CommitOptions{Version: version, Tag: o.tag,
			Shards: shards, Users: int64(len(o.final.users)), Source: m.Gate.Source(), Fence: e.fence})
		if err != nil {
			return nil, err
		}
		commit(slog.String("version", version), slog.Int("parts", len(s.Parts)), slog.Int64("rows", s.Rows))
		res := e.result(o)
		res.Published, res.Latest = true, "LATEST unchanged: a re-score publishes a table, not a model"
		res.StageTiming = e.stages.times
		return res, nil
	})
}

// rescoreOutcome is version m applied to this date's events: the slice of
// every event through the date, the version's ranking model and sequence
// encoder mapped onto it by id, and the published hybrid built on it.
func (e *env) rescoreOutcome(ctx context.Context, m *tables.Manifest) (*trainOutcome, error) {
	in, acc, inputs, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	s := e.newSlice(in, e.end.Unix())
	old, err := e.loadRanking(ctx, m, "weights.shlfw")
	if err != nil {
		return nil, err
	}
	var vocabs [2]*model.Vocab
	for k, rel := range []string{"vocab/users.parquet", "vocab/items.parquet"} {
		if vocabs[k], err = e.loadVocab(ctx, m, rel); err != nil {
			return nil, err
		}
	}
	rm := remap(old, vocabs[0], vocabs[1], in, s)
	seq, err := e.loadSequence(ctx, m, "sequence.shlfw", "vocab/items.parquet", in)
	if err != nil {
		return nil, err
	}
	if seq == nil && m.Selection.Sequence > 0 {
		return nil, Permanent(fmt.Errorf("rescore: version %s blends a sequence encoder but holds no sequence.shlfw", m.Version))
	}
	sel := m.Selection
	sel.Publish = "" // the version's model: its gate passed
	rec, err := e.recommender(ctx, s, rm, seq, sel)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprint(h, versionID(e.cfg.Date, e.run, inputs))
	return &trainOutcome{in: in, acc: acc, inputs: inputs, final: s, model: rm, rec: rec, seq: seq, manifest: *m, version: m.Version,
		tag: hex.EncodeToString(h.Sum(nil))[:12]}, nil
}
