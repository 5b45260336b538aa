package main

import (
	"flag"
	"fmt"
)

// command is one subcommand's help: what it does, how to call it and an
// example, printed by -h above the flags that apply to it.
type command struct {
	summary, usage, example string
	flags                   []string // of the common flags (config, date, events-url, output-url, force)
}

var commands = map[string]command{
	"run": {"ingest → train → evaluate → gate → score → publish one as-of date, end to end",
		"shelf run --date D --config FILE [--events-url URL] [--output-url URL] [--force]",
		"shelf run --date yesterday --config configs/online-retail-ii.yaml --events-url 's3://shop-events?region=eu-west-1' --output-url 's3://shelf?region=eu-west-1'",
		[]string{"config", "date", "events-url", "output-url", "force"}},
	"ingest": {"step 0 of a sharded pipeline, for dumps one pod should not read alone: read, validate and id-map one share of the date's dumps (listed file f goes to shard f mod N) into runs/D/<run>/ingest/; train, score and run with events.ingest_shards = N (or --ingest-shards N) merge the shards into the same events, version and tables",
		"shelf ingest --date D --config FILE [--shard i] --shards N   (--shard defaults to $JOB_COMPLETION_INDEX)",
		"JOB_COMPLETION_INDEX=2 shelf ingest --date 2024-11-02 --config /etc/shelf/config.yaml --shards 4 && shelf train --date 2024-11-02 --config /etc/shelf/config.yaml --ingest-shards 4",
		[]string{"config", "date", "events-url", "output-url"}},
	"train": {"step 1 of the sharded pipeline: ingest → train → evaluate → gate → publish the model version (no table)",
		"shelf train --date D --config FILE [--events-url URL] [--output-url URL] [--force]",
		"shelf train --date 2024-11-02 --config /etc/shelf/config.yaml",
		[]string{"config", "date", "events-url", "output-url", "force"}},
	"score": {"step 2: score one shard of the date's users with the version train published, staged for commit",
		"shelf score --date D --config FILE [--shard i] --shards N   (--shard defaults to $JOB_COMPLETION_INDEX)",
		"JOB_COMPLETION_INDEX=3 shelf score --date 2024-11-02 --config /etc/shelf/config.yaml --shards 16",
		[]string{"config", "date", "events-url", "output-url"}},
	"commit": {"step 3: check every staged shard, commit the table (_SUCCESS) and move LATEST",
		"shelf commit --date D --config FILE --shards N",
		"shelf commit --date 2024-11-02 --config /etc/shelf/config.yaml --shards 16",
		[]string{"config", "date", "events-url", "output-url"}},
	"rescore": {"apply a fitted version (default LATEST) to the events through D and commit D's recommendations: new users and new events count, the model is not refit; LATEST stays",
		"shelf rescore --date D --config FILE [--version V] [--shards N] [--force]   (--force: replace a table D's own nightly version wrote)",
		"shelf rescore --date today --config /etc/shelf/config.yaml   # hourly, between nightly refits",
		[]string{"config", "date", "events-url", "output-url", "force"}},
	"demo": {"the whole pipeline on the bundled Online Retail sample into ./shelf-out (no cloud account)",
		"shelf demo [--output-url URL] [--force]",
		"shelf demo && open shelf-out/models/online-retail/*/report.html",
		[]string{"output-url", "force"}},
	"backfill": {"run every date of a range (skipping dates already committed), a few at a time; prints a JSON summary",
		"shelf backfill --from D1 --to D2 --config FILE [--parallel N] [--force] [--events-url URL] [--output-url URL]",
		"shelf backfill --from 2024-01-01 --to 2024-03-31 --parallel 2 --config configs/online-retail-ii.yaml > backfill.json",
		[]string{"config", "events-url", "output-url", "force"}},
	"eval": {"measure: recompute a version's holdout metrics, score a committed table on the days after it, or run an offline protocol on a dump",
		"shelf eval --date D --config FILE [--version V | --forward-days N | --protocol temporal|leave-one-out|sampled [--sequence]]",
		"shelf eval --protocol leave-one-out --date 2010-12-09 --config configs/online-retail-ii.yaml --events-url file://$PWD/../shared/datasets/online-retail-ii",
		[]string{"config", "date", "events-url", "output-url"}},
	"tune": {"seeded hyper-parameter search on the validation window; writes the best config",
		"shelf tune --date D --config FILE [--trials N] [--out FILE]",
		"shelf tune --date 2010-12-09 --trials 10 --config configs/online-retail-ii.yaml --out tuned.yaml",
		[]string{"config", "date", "events-url", "output-url"}},
	"inspect": {"list the published versions, their gates, tables and LATEST, or one user's rows",
		"shelf inspect --config FILE [--output-url URL] [--user U [--date D]]",
		"shelf inspect --config configs/online-retail.yaml --output-url file://$PWD/shelf-out --user 12347",
		[]string{"config", "date", "output-url"}},
	"gen": {"write a deterministic synthetic shop (hive dt= partitions and an item catalog)",
		"shelf gen --url URL [--shape retail|mobile|sequential] [--events N --users N --items N --days N --end D --seed S]",
		"shelf gen --url file:///tmp/shop --shape mobile --events 60000 --users 800 --items 48000 --days 9",
		nil},
	"bench": {"stage throughput against the machine's measured limits and PyTorch; writes bench.md and bench.json",
		"shelf bench [--out DIR] [--events N]",
		"shelf bench --out bench-out",
		nil},
}

// newFlags is the flag set of cmd, with its help and the common flags that
// apply to it registered into c.
func newFlags(cmd string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	h := commands[cmd]
	if c != nil {
		c.register(fs, h.flags...)
	}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "shelf %s — %s\n\nUsage:\n  %s\n\nExample:\n  %s\n\nFlags:\n", cmd, h.summary, h.usage, h.example)
		fs.PrintDefaults()
	}
	return fs
}
