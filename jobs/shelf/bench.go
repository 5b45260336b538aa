package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shelfml/shelf/jobs"
	"github.com/shelfml/shelf/jobs/bench"
)

// benchCmd runs the stage benchmark and writes bench.md and bench.json.
func benchCmd(ctx context.Context, args []string, log *slog.Logger) (any, error) {
	fs := newFlags("bench", nil)
	out := fs.String("out", "bench-out", "directory for bench.md, bench.json and scratch data")
	o := bench.Options{Python: "/usr/bin/python3"}
	fs.Int64Var(&o.Events, "events", 1_000_000, "synthetic events")
	fs.IntVar(&o.Users, "users", 50_000, "users")
	fs.IntVar(&o.Items, "items", 10_000, "items")
	fs.IntVar(&o.Days, "days", 90, "days")
	fs.Float64Var(&o.PeakGFLOPs, "peak-gflops", 157, "stated float32 peak of the cores used, reported beside the measured one (Zen 3 AVX2+FMA at 2.45 GHz: 78 per core)")
	fs.IntVar(&o.Repeats, "repeats", 3, "runs of each stage; the report gives the median")
	fs.IntVar(&o.Threads, "threads", 2, "worker threads for training, scoring and PyTorch")
	fs.IntVar(&o.Batch, "batch", 512, "training batch size (rows)")
	fs.StringVar(&o.Python, "python", o.Python, "interpreter with torch for the side-by-side")
	if err := fs.Parse(args); err != nil {
		return nil, jobs.Permanent(err)
	}
	o.Dir = filepath.Join(*out, "data")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(o.Dir)
	rep, err := bench.Run(ctx, o, log)
	if err != nil {
		return nil, err
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(*out, "bench.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return nil, err
	}
	os.Stderr.WriteString(rep.Markdown())
	return rep, nil
}
