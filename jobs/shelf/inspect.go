package main

import (
	"context"
	"errors"
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
	var c common
	fs := newFlags("inspect", &c)
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
	latest, err := tables.Latest(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	if *user != "" {
		date := cfg.Date
		if date == "" { // LATEST's date, else the newest committed one
			if latest != "" {
				if m, err := tables.OpenVersion(ctx, b, cfg.Name, latest); err == nil {
					date = m.Date
				}
			}
			if date == "" {
				return jobs.Permanent(fmt.Errorf("inspect --user: model %q has no LATEST under %s: pass --date", cfg.Name, blobs.Redact(cfg.Output.URL)))
			}
		}
		return showUser(ctx, b, date, *user, stdout)
	}
	ids, err := tables.ListVersions(ctx, b, cfg.Name)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		names, err := modelNames(ctx, b)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return jobs.Permanent(fmt.Errorf("inspect: no model versions under %s (%w)", blobs.Redact(cfg.Output.URL), tables.ErrNoVersion))
		}
		return jobs.Permanent(fmt.Errorf("inspect: no versions of model %q under %s; it holds %s: pass that model's --config (or SHELF_NAME=…) (%w)",
			cfg.Name, blobs.Redact(cfg.Output.URL), strings.Join(names, ", "), tables.ErrNoVersion))
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

// modelNames lists the model names under models/ that hold a version.
func modelNames(ctx context.Context, b *blob.Bucket) ([]string, error) {
	it := b.List(&blob.ListOptions{Prefix: "models/", Delimiter: "/"})
	var names []string
	for {
		obj, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("list models/: %w", err)
		}
		if !obj.IsDir {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, "models/"), "/")
		if ids, err := tables.ListVersions(ctx, b, name); err == nil && len(ids) > 0 {
			names = append(names, fmt.Sprintf("%q (%d versions)", name, len(ids)))
		}
	}
	return names, nil
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
