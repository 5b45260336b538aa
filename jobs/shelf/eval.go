package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"text/tabwriter"
	"time"

	"github.com/shelfml/shelf/jobs"
)

// evalCmd recomputes a version's holdout metrics and prints model vs baselines.
func evalCmd(ctx context.Context, args, environ []string, log *slog.Logger, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var c common
	c.register(fs)
	versionID := fs.String("version", "", "model version to evaluate (default: the one this date's run published)")
	if err := fs.Parse(args); err != nil {
		return jobs.Permanent(err)
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return err
	}
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Now: time.Now,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
	res, err := r.Eval(ctx, *versionID)
	if err != nil {
		return err
	}
	cols := []string{"ndcg@10", "recall@10", "hr@10", "map@10", "ndcg@20", "recall@20", "hr@20", "coverage@10", "users"}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\t", "recommender")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw, "published?\t")
	for _, name := range []string{"model", "neural", "popularity", "itemknn"} {
		met := res.Metrics[name]
		fmt.Fprintf(tw, "%s\t", name)
		same := true
		for _, c := range cols {
			fmt.Fprintf(tw, "%.4f\t", met[c])
		}
		for k, v := range res.Published[name] {
			if math.Abs(met[k]-v) > 1e-9 {
				same = false
			}
		}
		mark := "same"
		if !same {
			mark = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t\n", mark)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "version %s: ", res.Version)
	if !res.Reproduced {
		fmt.Fprintln(stdout, "metrics differ from metrics.json")
		return jobs.Permanent(fmt.Errorf("eval: version %s: recomputed metrics differ from the published ones", res.Version))
	}
	fmt.Fprintln(stdout, "metrics.json reproduced exactly")
	return nil
}
