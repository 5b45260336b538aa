package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/synth"
	"github.com/shelfml/shelf/jobs"
)

// gen writes a synthetic behaviour dump (see io/synth) to a bucket URL.
func gen(ctx context.Context, args []string, log *slog.Logger) (any, error) {
	fs := newFlags("gen", nil)
	url := fs.String("url", "", "bucket URL to write dt=YYYY-MM-DD/part-*.parquet into")
	var o synth.Options
	fs.Int64Var(&o.Events, "events", 1_000_000, "total events")
	fs.IntVar(&o.Users, "users", 50_000, "distinct users")
	fs.IntVar(&o.Items, "items", 10_000, "distinct items")
	fs.IntVar(&o.Days, "days", 90, "days ending at --end")
	end := fs.String("end", "2024-03-31", "last day (YYYY-MM-DD, UTC)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed: same seed and sizes ⇒ identical files")
	fs.IntVar(&o.PartsPerDay, "parts-per-day", 1, "files per day partition")
	shape := fs.String("shape", "retail", "shop shape: retail (3-month web shop funnel), mobile (view-heavy, favourites, few purchases) or sequential (a planted item order)")
	fs.Float64Var(&o.CartRate, "cart-rate", 0, "share of viewed items carted (0 = the shape's)")
	fs.Float64Var(&o.FavoriteRate, "favorite-rate", 0, "share of viewed items favourited (0 = the shape's)")
	fs.Float64Var(&o.Sequence, "sequence", 0, "chance that a session's next item is the previous one's planted successor (0 = the shape's)")
	if err := fs.Parse(args); err != nil {
		return nil, jobs.Permanent(err)
	}
	var err error
	if o, err = synth.WithShape(o, *shape); err != nil {
		return nil, jobs.Permanent(err)
	}
	if o.End, err = time.Parse(time.DateOnly, *end); err != nil || *url == "" {
		return nil, jobs.Permanent(fmt.Errorf("gen: need --url and --end YYYY-MM-DD"))
	}
	b, err := blobs.OpenOutput(ctx, *url)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	t0 := time.Now()
	st, err := synth.Generate(ctx, b, o)
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	log.Info("generated", "events", st.Events, "files", st.Files, "bytes", st.Bytes, "seconds", secs, "events_per_second", float64(st.Events)/secs)
	return st, nil
}
