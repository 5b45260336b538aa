package main

import (
	"context"
	"encoding/json"
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
	var c common
	fs := newFlags("eval", &c)
	versionID := fs.String("version", "", "model version to evaluate (default: the one this date's run published)")
	forward := fs.Int("forward-days", 0, "instead: score the committed recommendations table of --date on the N days after it, next to baselines fit through the date")
	protocol := fs.String("protocol", "", "instead: fit Shelf and its baselines on the events through --date and measure them with a standard protocol: temporal, leave-one-out or sampled (publishes nothing)")
	asJSON := fs.Bool("json", false, "with --protocol: print the result as JSON")
	sequence := fs.Bool("sequence", false, "with --protocol: fit the sequence encoder even when sequence.enabled is false (it is on by default, as in runs)")
	if err := fs.Parse(args); err != nil {
		return jobs.Permanent(err)
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return err
	}
	if *protocol != "" && cfg.Output.URL == "" {
		cfg.Output.URL = "mem://" // a protocol publishes nothing; its checkpoints stay in memory
	}
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Now: time.Now,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY")), EvalSequence: *sequence}
	cols := []string{"ndcg@10", "recall@10", "hr@10", "map@10", "ndcg@20", "recall@20", "hr@20", "coverage@10", "users"}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	if *protocol != "" {
		res, err := r.EvalProtocol(ctx, *protocol)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		pc := []string{"ndcg@10", "recall@10", "hr@10", "ndcg@20", "hr@20", "users"}
		if res.Protocol != "sampled" {
			pc = append(pc[:5:5], "coverage@10", "users")
		}
		metricRow(tw, "recommender", pc, nil)
		fmt.Fprintln(tw)
		for _, name := range res.Names {
			metricRow(tw, name, pc, res.Metrics[name])
			fmt.Fprintln(tw)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "protocol %s on the events through %s: %s; %d test users (%d targets dropped: item unseen in training), validation %s (%d users); %.0f s\n",
			res.Protocol, res.Date, res.Split, res.TestUsers, res.Dropped, res.Validation, res.ValUsers, res.Seconds)
		if res.Negatives > 0 {
			fmt.Fprintf(stdout, "each target ranked against %d sampled negatives (not comparable with full ranking)\n", res.Negatives)
		}
		fmt.Fprintf(stdout, "model = the table Shelf would publish: %v\n", res.Selection)
		return nil
	}
	if *forward > 0 {
		res, err := r.EvalTable(ctx, *forward)
		if err != nil {
			return err
		}
		metricRow(tw, "recommender", cols, nil)
		fmt.Fprintln(tw)
		for _, name := range res.Names {
			metricRow(tw, name, cols, res.Metrics[name])
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
	metricRow(tw, "recommender", cols, nil)
	fmt.Fprintln(tw, "published?\t")
	for _, name := range []string{"model", "neural", "blend_without_neural", "itemknn_recency", "popularity", "itemknn"} {
		met, ok := res.Metrics[name]
		if !ok {
			continue
		}
		metricRow(tw, name, cols, met)
		same := true
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

// metricRow writes name and the cols of met (the column names when met is nil).
func metricRow(w io.Writer, name string, cols []string, met map[string]float64) {
	fmt.Fprintf(w, "%s\t", name)
	for _, c := range cols {
		if met == nil {
			fmt.Fprintf(w, "%s\t", c)
		} else if c == "users" {
			fmt.Fprintf(w, "%d\t", int64(met[c]))
		} else {
			fmt.Fprintf(w, "%.4f\t", met[c])
		}
	}
}
