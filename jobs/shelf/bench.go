package main

import (
	"context"
	"encoding/json"
	"fmt"
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
	ro := bench.RetrievalOptions{Epochs: 1, Days: 60, Depth: 200, Target: 0.99}
	only := fs.String("only", "", `"retrieval": run the retrieval-index benchmark alone; "stages": everything else`)
	fs.Int64Var(&ro.Events, "retrieval-events", 10_000_000, "retrieval benchmark: synthetic events")
	fs.IntVar(&ro.Users, "retrieval-users", 2_000_000, "retrieval benchmark: users")
	fs.IntVar(&ro.Items, "retrieval-items", 500_000, "retrieval benchmark: items")
	fs.IntVar(&ro.Sample, "retrieval-sample", 20_000, "retrieval benchmark: users timed (half tune the probe count)")
	fs.IntVar(&ro.NList, "retrieval-nlist", 0, "retrieval benchmark: index clusters (0: the default for the catalog)")
	fs.StringVar(&ro.Data, "retrieval-data", "", "retrieval benchmark: a directory of `shelf gen` output to use instead of generating")
	if err := fs.Parse(args); err != nil {
		return nil, jobs.Permanent(err)
	}
	o.Dir = filepath.Join(*out, "data")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(o.Dir)
	if *only != "" && *only != "retrieval" && *only != "stages" {
		return nil, jobs.Permanent(fmt.Errorf("bench: --only %q: want retrieval or stages", *only))
	}
	var rep *bench.Report
	if *only != "retrieval" {
		var err error
		if rep, err = bench.Run(ctx, o, log); err != nil {
			return nil, err
		}
		if err := writeReport(*out, "bench", rep, rep.Markdown()); err != nil {
			return nil, err
		}
	}
	if *only == "stages" {
		return rep, nil
	}
	ro.Threads, ro.Dir = o.Threads, filepath.Join(*out, "data-retrieval")
	defer os.RemoveAll(ro.Dir)
	rr, err := bench.RunRetrieval(ctx, ro, log)
	if err != nil {
		return nil, err
	}
	if err := writeReport(*out, "bench-retrieval", rr, rr.Markdown()); err != nil {
		return nil, err
	}
	if rep == nil {
		return rr, nil
	}
	return rep, nil
}

// writeReport writes name.json and name.md under dir and the Markdown to stderr.
func writeReport(dir, name string, v any, md string) error {
	js, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	os.Stderr.WriteString(md)
	return nil
}
