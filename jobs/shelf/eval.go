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
	forward := fs.Int("forward-days", 0, "instead: score the committed recommendations table of --date on the N days after it, next to baselines fit through the date")
	if err := fs.Parse(args); err != nil {
		return jobs.Permanent(err)
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return err
	}
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Now: time.Now,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
	cols := []string{"ndcg@10", "recall@10", "hr@10", "map@10", "ndcg@20", "recall@20", "hr@20", "coverage@10", "users"}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	if *forward > 0 {
		res, err := r.EvalTable(ctx, *forward)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t", "recommender")
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c)
		}
		fmt.Fprintln(tw)
		for _, name := range res.Names {
			fmt.Fprintf(tw, "%s\t", name)
			for _, c := range cols {
				fmt.Fprintf(tw, "%.4f\t", res.Metrics[name][c])
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "table dt=%s (version %s, %d users) scored on [%s, %s); %d targets dropped (items new after the date)\n",
			res.Date, res.Version, res.TableUsers, res.From, res.To, res.Dropped)
		return nil
	}
	res, err := r.Eval(ctx, *versionID)
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "%s\t", "recommender")
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw, "published?\t")
	for _, name := range []string{"model", "neural", "itemknn_recency", "popularity", "itemknn"} {
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
