package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/jobs"
)

// inspect lists the model's published versions, their gate metric and LATEST.
func inspect(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	var c common
	c.register(fs)
	user := fs.String("user", "", "show this user's recommendations in the committed table of --date")
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
	if *user != "" {
		return showUser(ctx, b, cfg.Date, *user, stdout)
	}
	ids, err := tables.ListVersions(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	latest, err := tables.Latest(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tDATE\tGATE\tMETRIC\tMODEL\tBEST BASELINE\tPURCHASE\tTABLES\tLATEST")
	sort.Strings(ids)
	for _, id := range ids {
		m, err := tables.OpenVersion(ctx, b, cfg.Name, id)
		if err != nil {
			fmt.Fprintf(tw, "%s\t?\tunreadable: %v\t\t\t\t\t\t\n", id, err)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.4f\t%s %.4f\t%s\t%s\t%s\n", id, m.Date, gate, m.Gate.Metric, m.Gate.Model, m.Gate.BestBaseline, m.Gate.Baseline,
			purchaseGate(m.Purchase), committedTables(ctx, b, m), mark)
	}
	return tw.Flush()
}

// purchaseGate is the purchase model's own gate decision.
func purchaseGate(p *tables.PurchaseSummary) string {
	switch {
	case p == nil:
		return "-"
	case p.GatePassed:
		return fmt.Sprintf("passed ll %.4f", p.LogLoss)
	default:
		return fmt.Sprintf("refused ll %.4f", p.LogLoss)
	}
}

// committedTables lists the version's date partitions committed with this
// version: a version the ranking gate refused can still own the purchase table.
func committedTables(ctx context.Context, b *blob.Bucket, m *tables.Manifest) string {
	var out []string
	for _, t := range []string{tables.Recommendations, tables.PurchasePredictions} {
		if s, err := tables.ReadSuccess(ctx, b, t, m.Date); err == nil && s.ModelVersion == m.Version {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// showUser prints one user's rows of a committed recommendations partition.
func showUser(ctx context.Context, b *blob.Bucket, date, user string, stdout io.Writer) error {
	if date == "" {
		return jobs.Permanent(fmt.Errorf("inspect --user: pass --date"))
	}
	s, err := tables.ReadSuccess(ctx, b, tables.Recommendations, date)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tRANK\tITEM\tSCORE\tREASON\tSOURCE\tVERSION")
	found := 0
	for _, p := range s.Parts {
		rows, err := tables.ReadAll[tables.RecommendationRow](ctx, b, tables.PartitionPrefix(tables.Recommendations, date)+p.Path)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.UserID != user {
				continue
			}
			reason := "-"
			if r.ReasonItemID != nil {
				reason = *r.ReasonItemID
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%.4f\t%s\t%s\t%s\n", r.UserID, r.Rank, r.ItemID, r.Score, reason, r.Source, r.ModelVersion)
			found++
		}
	}
	if found == 0 {
		return jobs.Permanent(fmt.Errorf("inspect: user %q has no rows in %s", user, tables.PartitionPrefix(tables.Recommendations, date)))
	}
	return tw.Flush()
}
