package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/shelfml/shelf/jobs"
)

// tuneCmd runs the seeded hyper-parameter search and writes the best config.
func tuneCmd(ctx context.Context, args, environ []string, log *slog.Logger, stdout io.Writer) error {
	var c common
	fs := newFlags("tune", &c)
	trials := fs.Int("trials", 12, "settings to try; trial 0 is the config as given, the rest are drawn from a PCG seeded by the config's seed")
	out := fs.String("out", "", "also write the best config to this local file (it is always written to tuning/<name>/<date>/best.yaml in the output bucket)")
	if err := fs.Parse(args); err != nil {
		return jobs.Permanent(err)
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return err
	}
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Now: time.Now,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
	res, err := r.Tune(ctx, *trials)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "trial\tdim\tlr\tneg\tl2\tdropout\tloss\tneg_alpha\thalf_life\tepochs\tneural %s\thybrid %s\tseconds\t\n", res.Metric, res.Metric)
	for i, t := range res.Trials {
		p := t.Params
		mark := ""
		if i == res.Best {
			mark = "<- best"
		}
		if t.Error != "" {
			mark = "failed: " + t.Error
		}
		fmt.Fprintf(tw, "%d\t%g\t%.4f\t%g\t%g\t%g\t%s\t%g\t%g\t%d\t%.4f\t%.4f\t%.1f\t  %s\t\n", t.N, p["dim"], p["learning_rate"], p["negatives"],
			p["l2"], p["dropout"], t.Loss, p["neg_alpha"], p["half_life_days"], t.Epochs, t.Neural, t.Validation, t.Seconds, mark)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "best config: %s in the output bucket\n", res.Key)
	if *out != "" {
		if err := os.WriteFile(*out, res.Config, 0o644); err != nil {
			return fmt.Errorf("tune: %w", err)
		}
		fmt.Fprintf(stdout, "best config: %s\n", *out)
	}
	return nil
}
