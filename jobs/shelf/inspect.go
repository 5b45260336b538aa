package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/jobs"
)

// inspect lists the model's published versions, their gate metric and LATEST.
func inspect(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return jobs.Permanent(err)
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return err
	}
	if cfg.Output.URL == "" {
		return jobs.Permanent(fmt.Errorf("inspect: pass --output-url or set output.url"))
	}
	b, err := blobs.Open(ctx, cfg.Output.URL)
	if err != nil {
		return err
	}
	defer b.Close()
	ids, err := tables.ListVersions(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	latest, err := tables.Latest(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tDATE\tGATE\tMETRIC\tMODEL\tBEST BASELINE\tLATEST")
	sort.Strings(ids)
	for _, id := range ids {
		m, err := tables.OpenVersion(ctx, b, cfg.Name, id)
		if err != nil {
			fmt.Fprintf(tw, "%s\t?\tunreadable: %v\t\t\t\t\n", id, err)
			continue
		}
		gate := "refused"
		if m.Gate.Passed {
			gate = "passed"
		}
		mark := ""
		if id == latest {
			mark = "<- LATEST"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.4f\t%s %.4f\t%s\n", id, m.Date, gate, m.Gate.Metric, m.Gate.Model, m.Gate.BestBaseline, m.Gate.Baseline, mark)
	}
	return tw.Flush()
}
