package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// scoreBlock is how many users share one retrieval matrix multiply.
const scoreBlock = 256

// scoreWorkers is how many blocks are scored in parallel (score.workers,
// default the CPUs this process may use). Lists do not depend on it.
func (e *env) scoreWorkers() int { return sysres.Workers(e.cfg.Score.Workers) }

// scoreShard writes part shard of shards of the recommendations table for
// the users whose local index ≡ shard (mod shards).
func (e *env) scoreShard(ctx context.Context, o *trainOutcome, shard, shards int) (int64, error) {
	done := e.stages.begin("score")
	cfg := e.cfg.Score
	s := o.final
	rec := o.rec
	// The same items the holdouts exclude (score.exclude).
	exclude := s.exclude
	excludesNothing := s.excluded != nil && slices.IndexFunc(s.excluded, func(x []int32) bool { return len(x) > 0 }) < 0
	var users []int32
	for u := shard; u < len(s.users); u += shards {
		users = append(users, int32(u))
	}
	w, err := tables.NewWriter[tables.RecommendationRow](ctx, e.out, tables.StagedPartKey(tables.Recommendations, e.cfg.Date, tables.Identity(o.version, o.tag), shard, shards),
		partMeta(o.version, shard, shards, len(users))...)
	if err != nil {
		return 0, err
	}
	defer w.Abort()
	// The purchase table's predicted items need the ranker's top `depth`
	// (history included) of the same users: taken from this pass — as the
	// head of the same lists when nothing is excluded (the top K of a
	// recommender is the head of its top depth when both are within its
	// candidates), else from a second list per user — not a second pass.
	purchase := o.purchase != nil && o.purchase.report.GatePassed
	var lists [][]model.Scored // by local user index, global items
	depth, shared := 0, false
	if purchase && o.rec != nil {
		lists = make([][]model.Scored, len(s.users))
		depth = o.purchase.spec.depth()
		shared = excludesNothing && depth >= cfg.K && cfg.Candidates >= depth
	}
	// scoreWorkers blocks are scored at once, then written in order, so the
	// table does not depend on scheduling.
	scoreWorkers := e.scoreWorkers()
	outs := make([][][]model.Scored, scoreWorkers)
	extra := make([][][]model.Scored, scoreWorkers)
	for i := range outs {
		outs[i] = make([][]model.Scored, scoreBlock)
		extra[i] = make([][]model.Scored, scoreBlock)
	}
	rows := make([]tables.RecommendationRow, 0, scoreBlock*cfg.K)
	meter := e.meter("score", "users", int64(len(users)), "shard", shard)
	defer meter.Finish()
	t0 := time.Now()
	for lo := 0; lo < len(users); lo += scoreWorkers * scoreBlock {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var wg sync.WaitGroup
		blks := make([][]int32, scoreWorkers)
		for wi := range scoreWorkers {
			a := min(lo+wi*scoreBlock, len(users))
			blks[wi] = users[a:min(a+scoreBlock, len(users))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				blk, out := blks[wi], outs[wi][:len(blks[wi])]
				switch {
				case shared:
					rec.RecommendBlock(blk, depth, nil, out)
				case lists != nil:
					rec.RecommendBlock(blk, depth, nil, extra[wi][:len(blk)])
					fallthrough
				default:
					rec.RecommendBlock(blk, cfg.K, exclude, out)
				}
				if lists == nil {
					return
				}
				src := out
				if !shared {
					src = extra[wi][:len(blk)]
				}
				for b, u := range blk {
					lists[u] = s.globalList(src[b])
					if shared {
						out[b] = out[b][:min(cfg.K, len(out[b]))]
					}
				}
			}()
		}
		wg.Wait()
		for wi, blk := range blks {
			if err := e.writeRecRows(w, o, blk, outs[wi], rows[:0]); err != nil {
				return 0, err
			}
			meter.Add(int64(len(blk)), slog.Int64("rows", w.Rows()))
		}
	}
	meter.Finish()
	if err := w.Close(); err != nil {
		return 0, err
	}
	if purchase {
		if err := e.scorePurchaseShard(ctx, o, shard, shards, lists); err != nil {
			return 0, err
		}
	}
	secs := time.Since(t0).Seconds()
	done(slog.Int("shard", shard), slog.Int("shards", shards), slog.Int("users", len(users)),
		slog.Int64("rows", w.Rows()), slog.Float64("users_per_second", round3(float64(len(users))/max(secs, 1e-9))))
	return w.Rows(), nil
}

// partMeta is the footer metadata of shard i of n of a version's table,
// which commit checks.
func partMeta(version string, i, n, users int) []tables.Meta {
	return []tables.Meta{{Key: tables.MetaModelVersion, Value: version}, {Key: tables.MetaPart, Value: fmt.Sprintf("%d/%d", i, n)},
		{Key: tables.MetaUsers, Value: fmt.Sprint(users)}}
}

// writeRecRows turns one block's recommendations into table rows.
func (e *env) writeRecRows(w *tables.Writer[tables.RecommendationRow], o *trainOutcome, blk []int32, out [][]model.Scored, rows []tables.RecommendationRow) error {
	s := o.final
	for bi, u := range blk {
		uid := o.in.Users.ID(s.users[u])
		src := o.manifest.Gate.Source()
		if s.ui.RowLen(u) == 0 {
			src = "popularity"
		}
		for r, sc := range out[bi] {
			row := tables.RecommendationRow{UserID: uid, Rank: int32(r + 1), ItemID: o.in.Items.ID(s.items[sc.Item]),
				Score: sc.Score, Source: src, ModelVersion: o.version}
			if sc.Reason >= 0 {
				id := o.in.Items.ID(s.items[sc.Reason])
				row.ReasonItemID = &id
			}
			rows = append(rows, row)
		}
	}
	return w.Write(rows)
}

// loadOutcome rebuilds what scoring needs in a separate process: it re-reads
// the events (deterministically giving the same indices), loads the version
// trained for this run and checks that its vocabularies match the data.
func (e *env) loadOutcome(ctx context.Context) (*trainOutcome, error) {
	in, acc, inputs, err := e.ingest(ctx, false)
	if err != nil {
		return nil, err
	}
	id := versionID(e.cfg.Date, e.run, inputs)
	m, err := tables.OpenVersion(ctx, e.out, e.cfg.Name, id)
	if errors.Is(err, tables.ErrNoVersion) {
		// A shard started before train finished: a later attempt finds it.
		return nil, Retryable(fmt.Errorf("score: no version %s yet: run `shelf train --date %s` with the same config first: %w", id, e.cfg.Date, err))
	}
	if err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	if m.Gate.Source() == "" {
		return nil, Permanent(fmt.Errorf("score: version %s publishes no table: %s", id, m.Gate.Reason))
	}
	cutoff := e.end.Unix()
	if !e.cfg.Train.Refit {
		t, err := time.Parse(time.RFC3339, m.Window.TestStart)
		if err != nil {
			return nil, fmt.Errorf("manifest window: %w", err)
		}
		cutoff = t.Unix()
	}
	s := e.newSlice(in, cutoff)
	rm, err := e.loadRanking(ctx, m, "weights.shlfw")
	if err != nil {
		return nil, err
	}
	for _, v := range []struct {
		file  string
		local []int32
		vocab *model.Vocab
	}{{"vocab/users.parquet", s.users, in.Users}, {"vocab/items.parquet", s.items, in.Items}} {
		voc, err := e.loadVocab(ctx, m, v.file)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(v.local))
		for i, g := range v.local {
			ids[i] = v.vocab.ID(g)
		}
		if !slices.Equal(ids, voc.IDs()) {
			return nil, Permanent(fmt.Errorf("score: %s of version %s does not match the input data (inputs changed since training?)", v.file, id))
		}
	}
	seq, err := e.loadSequence(ctx, m, "sequence.shlfw", "vocab/items.parquet", in)
	if err != nil {
		return nil, err
	}
	if seq == nil && m.Selection.Sequence > 0 {
		return nil, Permanent(fmt.Errorf("score: version %s blends a sequence encoder but holds no sequence.shlfw", id))
	}
	rec, err := e.recommender(ctx, s, rm, seq, m.Selection)
	if err != nil {
		return nil, err
	}
	pm, err := loadPurchase(ctx, e, m)
	if err != nil {
		return nil, err
	}
	if pm != nil {
		pm.report.GatePassed = true
	}
	return &trainOutcome{in: in, acc: acc, inputs: inputs, final: s, model: rm, rec: rec, seq: seq, purchase: pm, manifest: *m, version: id}, nil
}
