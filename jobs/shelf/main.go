// Command shelf is Shelf's batch job: it trains recommendation models from
// behaviour dumps in object storage and publishes versioned artifacts and
// precomputed tables. See README.md for operators.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	// Storage drivers: every URL scheme production uses.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"golang.org/x/term"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/internal/sysres"
	"github.com/shelfml/shelf/jobs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `shelf — nightly recommendation training

Usage:
  shelf run      --date D --config FILE [--events-url URL] [--output-url URL] [--force]
  shelf ingest   --date D --config FILE --shard i --shards N   one share of the dumps, for a sharded train (default shard: $JOB_COMPLETION_INDEX)
  shelf train    --date D --config FILE [...]     ingest → train → evaluate → gate → publish version
  shelf score    --date D --config FILE --shard i --shards N   (default shard: $JOB_COMPLETION_INDEX)
  shelf commit   --date D --config FILE --shards N              check parts, _SUCCESS, move LATEST
  shelf rescore  --date D --config FILE [--version V]   a fitted version (default LATEST) on the events through D: the table, no refit
  shelf backfill --from D1 --to D2 --config FILE [--parallel N] [--force]
  shelf demo     [--output-url URL]             whole pipeline on the bundled sample into ./shelf-out
  shelf eval     --date D --config FILE [--version V | --forward-days N | --protocol P]  a version's holdout metrics, a table on later days, or an offline protocol
  shelf tune     --date D --config FILE [--trials N] [--out FILE]  seeded hyper-parameter search on the validation window; writes the best config
  shelf inspect  --config FILE [--output-url URL] [--date D --user U]   list versions and LATEST, or a user's rows
  shelf gen      --url URL [--events N --users N --items N --days N --end D --seed S]   synthetic dumps
  shelf bench    [--out DIR] [--events N]    stage throughput vs the machine's limits and PyTorch (bench.md/json)
  shelf version

Every command also takes --quiet (warnings and errors only) and --output json (the result as
JSON even at a terminal; elsewhere it always is). Logs are text at a terminal, JSON lines
otherwise (SHELF_LOG_FORMAT=text|json, SHELF_LOG_LEVEL=debug|info|warn|error).
Settings: defaults → --config YAML (or $SHELF_CONFIG) → SHELF_* environment → flags.
--date accepts YYYY-MM-DD, "today" or "yesterday" (UTC).
Exit codes: 0 done (a table was committed: the model's or, when it lost, the best baseline's),
1 retryable (storage, interrupted, the date's lock held by a live run, a crash),
2 permanent (bad config, URL, credentials or data; a missing version; a same-date rerun worse
than the date's table). "shelf CMD -h" explains each command.
`

func main() {
	if supervised(os.Args[1:]) {
		if code := supervise(os.Args[1:], os.Stderr); code >= 0 {
			os.Exit(code)
		}
	}
	// The Go heap's soft limit follows the container's memory limit unless
	// GOMEMLIMIT says otherwise.
	sysres.ApplyMemoryLimit(os.Getenv)
	// SHELF_CPU_PROFILE=path writes a Go CPU profile of the whole command
	// (`go tool pprof bin/shelf path`), for finding where a large run spends.
	if path := os.Getenv("SHELF_CPU_PROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "SHELF_CPU_PROFILE=") })
			code := run(os.Args[1:], env, os.Stdout, os.Stderr)
			pprof.StopCPUProfile()
			f.Close()
			reportExit(code)
			os.Exit(code)
		}
	}
	code := run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	reportExit(code)
	os.Exit(code)
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return jobs.ExitPermanent
		}
		return jobs.ExitOK
	}
	args, quiet := cutFlag(args, "quiet")
	args, asJSON := cutOutputJSON(args)
	if quiet {
		environ = append(slices.Clone(environ), "SHELF_LOG_LEVEL=warn")
	}
	progress, logw := progressOn(stderr, quiet)
	defer progress.Close()
	log := newLogger(environ, logw, isTerminal(stderr))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, rest := args[0], args[1:]
	var res any
	var err error
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, version)
		return jobs.ExitOK
	case "run", "train", "score", "commit", "demo", "rescore", "ingest":
		res, err = stage(ctx, cmd, rest, environ, log, progress)
	case "backfill":
		res, err = backfill(ctx, rest, environ, log, progress)
	case "gen":
		res, err = gen(ctx, rest, log)
	case "bench":
		res, err = benchCmd(ctx, rest, log)
	case "inspect":
		err = inspect(ctx, rest, environ, stdout)
	case "eval":
		err = evalCmd(ctx, rest, environ, log, stdout)
	case "tune":
		err = tuneCmd(ctx, rest, environ, log, stdout)
	default:
		fmt.Fprintf(stderr, "shelf: unknown command %q\n\n%s", cmd, usage)
		return jobs.ExitPermanent
	}
	progress.Close() // stdout may be the same terminal
	if res != nil {
		if r, ok := res.(*jobs.Result); ok && !asJSON && isTerminal(stdout) {
			printSummary(stdout, cmd, r)
		} else {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
		}
		writeXCom(res, log)
		if r, ok := res.(*jobs.Result); ok && cmd == "demo" && err == nil {
			demoNext(stderr, r)
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		return jobs.ExitOK // -h printed the command's flags
	}
	code := jobs.ExitCode(err)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			log.Error("interrupted: stopped between steps; the next attempt resumes", "err", err, "exit_code", code)
		} else {
			log.Error(cmd+" failed", "err", err, "exit_code", code)
		}
	}
	return code
}

// newLogger writes JSON lines, or readable key=value text
// (SHELF_LOG_FORMAT=text, the default on a terminal); SHELF_LOG_LEVEL
// (debug, info, warn, error) filters.
func newLogger(environ []string, w io.Writer, tty bool) *slog.Logger {
	format, level := "json", slog.LevelInfo
	if tty {
		format = "text"
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SHELF_LOG_FORMAT="); ok {
			format = v
		}
		if v, ok := strings.CutPrefix(kv, "SHELF_LOG_LEVEL="); ok {
			level.UnmarshalText([]byte(v))
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		opts.ReplaceAttr = readableAttr
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// readableAttr makes text logs readable: maps, slices and structs as
// compact JSON (not Go's map[...] syntax), floats to 4 significant digits,
// the time to the second.
func readableAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 {
		switch a.Key {
		case slog.TimeKey:
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("15:04:05"))
		case slog.LevelKey, slog.MessageKey, slog.SourceKey:
			return a
		}
	}
	switch a.Value.Kind() {
	case slog.KindFloat64:
		return slog.String(a.Key, strconv.FormatFloat(a.Value.Float64(), 'g', 4, 64))
	case slog.KindAny:
		v := a.Value.Any()
		if err, ok := v.(error); ok {
			return slog.String(a.Key, err.Error())
		}
		if b, err := json.Marshal(v); err == nil {
			return slog.String(a.Key, string(b))
		}
	}
	return a
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// cutFlag removes --name / -name from args and reports whether it was there
// (a flag every command takes, handled before the command's own flags).
func cutFlag(args []string, name string) ([]string, bool) {
	found := false
	out := args[:1:1]
	for _, a := range args[1:] {
		if a == "--"+name || a == "-"+name {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// cutOutputJSON removes --output json (or --output=json) from args.
func cutOutputJSON(args []string) ([]string, bool) {
	found := false
	out := args[:1:1]
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "--output" || a == "-output") && i+1 < len(args) && args[i+1] == "json":
			found = true
			i++
		case a == "--output=json" || a == "-output=json":
			found = true
		default:
			out = append(out, a)
		}
	}
	return out, found
}

// printSummary is a run's result for a person at a terminal; --output json
// (or a stdout that is not a terminal: pods, Airflow, pipes) prints the
// whole result as JSON instead.
func printSummary(w io.Writer, cmd string, r *jobs.Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("date", r.Date)
	if r.Version != "" {
		row("version", r.Version)
	}
	switch {
	case r.Skipped:
		row("result", "already committed with this config and code: nothing to do (--force recomputes)")
	case r.TableSource == "model":
		row("result", "published the model's table")
	case r.TableSource != "":
		row("result", "published the "+r.TableSource+" baseline's table: the model did not pass (LATEST unchanged)")
	case cmd == "train" && r.Gate.Metric != "":
		row("result", "version published; score and commit its table next")
	}
	if g := r.Gate; g.Metric != "" {
		row("gate", g.Reason)
	}
	if r.Latest != "" {
		row("LATEST", r.Latest)
	}
	if r.Accounting != nil {
		a := r.Accounting
		var rej int64
		for _, n := range a.Rejected {
			rej += n
		}
		row("input rows", fmt.Sprintf("%d read: %d used, %d rejected or filtered, %d outside the window, %d duplicates", a.Read, a.Used, rej, a.OutsideWindow, a.Duplicate))
	}
	if r.TablesURI != "" {
		row("table", r.TablesURI)
	}
	if r.VersionURI != "" {
		row("version files", r.VersionURI)
		if p, ok := strings.CutPrefix(r.VersionURI, "file://"); ok {
			row("report", strings.TrimSuffix(p, "/")+"/report.html")
		}
	}
	tw.Flush()
}

// progressOn draws progress bars when stderr is a terminal, with the log
// lines written through it (above the bars); otherwise progress is logged
// as periodic lines. It returns the progress settings and the log writer.
func progressOn(stderr io.Writer, quiet bool) (*jobs.Progress, io.Writer) {
	f, ok := stderr.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &jobs.Progress{}, stderr
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	t := jobs.NewTerminal(f, width)
	return &jobs.Progress{Terminal: t}, t
}

// common are the flags every stage shares.
type common struct {
	config, date, eventsURL, outputURL string
	force                              bool
}

// register adds the common flags named in which to fs.
func (c *common) register(fs *flag.FlagSet, which ...string) {
	for _, name := range which {
		switch name {
		case "config":
			fs.StringVar(&c.config, "config", "", "YAML config file (default $SHELF_CONFIG)")
		case "date":
			fs.StringVar(&c.date, "date", "", "as-of date YYYY-MM-DD, today or yesterday (UTC)")
		case "events-url":
			fs.StringVar(&c.eventsURL, "events-url", "", "bucket URL of the behaviour dumps (default events.url)")
		case "output-url":
			fs.StringVar(&c.outputURL, "output-url", "", "bucket URL for artifacts and tables (default output.url)")
		case "force":
			fs.BoolVar(&c.force, "force", false, "take over another run's lock and recompute committed output")
		}
	}
}

// settings builds the effective config: defaults → file → env → flags.
func (c *common) settings(environ []string) (configs.Config, error) {
	path := c.config
	if path == "" {
		path = lookup(environ, "SHELF_CONFIG")
	}
	cfg, err := configs.Load(path)
	if err != nil {
		return cfg, jobs.Permanent(err)
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return cfg, jobs.Permanent(fmt.Errorf("environment: %w", err))
	}
	if c.date != "" {
		cfg.Date = c.date
	}
	if cfg.Date, err = resolveDate(cfg.Date, time.Now()); err != nil {
		return cfg, jobs.Permanent(err)
	}
	if c.eventsURL != "" {
		cfg.Events.URL = c.eventsURL
	}
	if c.outputURL != "" {
		cfg.Output.URL = c.outputURL
	}
	return cfg, nil
}

func resolveDate(d string, now time.Time) (string, error) {
	switch d {
	case "today":
		return now.UTC().Format(time.DateOnly), nil
	case "yesterday":
		return now.UTC().AddDate(0, 0, -1).Format(time.DateOnly), nil
	}
	if d != "" {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			var pe *time.ParseError
			if errors.As(err, &pe) && pe.Message != "" {
				// "day out of range" and the like: the shape was right
				return "", fmt.Errorf("--date %q: %s (want a real calendar day YYYY-MM-DD, today or yesterday)", d, strings.TrimPrefix(pe.Message, ": "))
			}
			return "", fmt.Errorf("--date %q: want YYYY-MM-DD, today or yesterday", d)
		}
	}
	return d, nil
}

func lookup(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func stage(ctx context.Context, cmd string, args, environ []string, log *slog.Logger, progress *jobs.Progress) (any, error) {
	var c common
	fs := newFlags(cmd, &c)
	shard, shards := new(int), new(int)
	*shard = -1
	modelVersion := new(string)
	if cmd == "rescore" {
		fs.StringVar(modelVersion, "version", "", "the fitted version to apply (default LATEST)")
		fs.IntVar(shards, "shards", 0, "parts of the table (default score.shards)")
	}
	if cmd == "score" || cmd == "ingest" {
		fs.IntVar(shard, "shard", -1, "shard index (default $JOB_COMPLETION_INDEX)")
	}
	if cmd == "score" || cmd == "commit" {
		fs.IntVar(shards, "shards", 0, "number of shards (default score.shards)")
	}
	ingestShards := new(int)
	if cmd == "ingest" {
		fs.IntVar(ingestShards, "shards", 0, "number of ingest shards (default events.ingest_shards)")
	}
	if cmd == "run" || cmd == "train" || cmd == "score" || cmd == "rescore" {
		fs.IntVar(ingestShards, "ingest-shards", 0, "merge this many ingest shards instead of reading the dumps (default events.ingest_shards; 0 there: read the dumps)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, jobs.Permanent(err)
	}
	if fs.NArg() > 0 {
		return nil, jobs.Permanent(fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args()))
	}
	if cmd == "demo" {
		if err := demoDefaults(&c); err != nil {
			return nil, jobs.Permanent(err)
		}
	}
	cfg, err := c.settings(environ)
	if err != nil {
		return nil, err
	}
	if *shards > 0 {
		cfg.Score.Shards = *shards
	}
	if *ingestShards > 0 {
		cfg.Events.IngestShards = *ingestShards
	}
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Force: c.force, Now: time.Now, Progress: progress,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
	if cmd == "ingest" {
		return ingestShard(ctx, r, *shard, environ)
	}
	t0 := time.Now()
	res, err := dispatch(ctx, cmd, r, *shard, *modelVersion, environ)
	if url := cfg.Metrics.PushgatewayURL; url != "" {
		if perr := jobs.PushMetrics(context.WithoutCancel(ctx), url, cfg.Name, cmd, res, err, time.Since(t0), time.Now()); perr != nil {
			log.Warn("could not push metrics", "err", perr)
		}
	}
	if res == nil {
		return nil, err // a typed nil *Result must not reach the JSON printer
	}
	return res, err
}

// ingestShard runs `shelf ingest`: shard --shard (or $JOB_COMPLETION_INDEX)
// of --shards (or events.ingest_shards).
func ingestShard(ctx context.Context, r *jobs.Runner, shard int, environ []string) (any, error) {
	n := r.Cfg.Events.IngestShards
	if n <= 0 {
		return nil, jobs.Permanent(errors.New("ingest: pass --shards N or set events.ingest_shards (and give train, score and run the same count)"))
	}
	shard, err := shardIndex("ingest", shard, environ)
	if err != nil {
		return nil, err
	}
	res, err := r.Ingest(ctx, shard, n)
	if res == nil {
		return nil, err
	}
	return res, err
}

// shardIndex is --shard, else $JOB_COMPLETION_INDEX.
func shardIndex(cmd string, shard int, environ []string) (int, error) {
	if shard >= 0 {
		return shard, nil
	}
	v := lookup(environ, "JOB_COMPLETION_INDEX")
	if _, err := fmt.Sscanf(v, "%d", &shard); err != nil {
		return 0, jobs.Permanent(fmt.Errorf("%s: pass --shard or set JOB_COMPLETION_INDEX (got %q)", cmd, v))
	}
	return shard, nil
}

func dispatch(ctx context.Context, cmd string, r *jobs.Runner, shard int, version string, environ []string) (*jobs.Result, error) {
	switch cmd {
	case "rescore":
		return r.Rescore(ctx, version, r.Cfg.Score.Shards, r.Force)
	case "run", "demo":
		return r.Run(ctx)
	case "train":
		return r.Train(ctx)
	case "score":
		shard, err := shardIndex("score", shard, environ)
		if err != nil {
			return nil, err
		}
		return r.Score(ctx, shard, r.Cfg.Score.Shards)
	default:
		return r.Commit(ctx, r.Cfg.Score.Shards)
	}
}

// demoNext tells a newcomer where the demo's output is and what to run next.
func demoNext(w io.Writer, r *jobs.Result) {
	outURL, _, ok := strings.Cut(r.VersionURI, "/models/")
	if !ok {
		return
	}
	report := strings.TrimPrefix(strings.TrimSuffix(r.VersionURI, "/"), "file://") + "/report.html"
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, report); err == nil && !strings.HasPrefix(rel, "..") {
			report = rel
		}
	}
	data, _ := filepath.Abs("testdata/online-retail")
	fmt.Fprintf(w, `
The demo published model version %s and its tables under %s
  the report (open it in a browser): %s
  the versions and LATEST:  ./bin/shelf inspect --config configs/online-retail.yaml --output-url %s
  one customer's list:      ./bin/shelf inspect --config configs/online-retail.yaml --output-url %s --user 12347
  re-measure the holdout:   ./bin/shelf eval --config configs/online-retail.yaml --date %s --events-url file://%s --output-url %s
`, r.Version, outURL, report, outURL, outURL, r.Date, data, outURL)
}

// demoDefaults points the demo at the bundled sample and ./shelf-out.
func demoDefaults(c *common) error {
	data, err := filepath.Abs("testdata/online-retail")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(data, "online_retail_sample.parquet")); err != nil {
		return fmt.Errorf("demo: bundled data not found (run from the repository root): %w", err)
	}
	if c.config == "" {
		c.config = "configs/online-retail.yaml"
	}
	if c.date == "" {
		c.date = "2011-03-31"
	}
	if c.eventsURL == "" {
		c.eventsURL = "file://" + data
	}
	if c.outputURL == "" {
		out, err := filepath.Abs("shelf-out")
		if err != nil {
			return err
		}
		c.outputURL = "file://" + out
	}
	return nil
}

// writeXCom hands the result to Airflow's KubernetesPodOperator when it asks.
func writeXCom(res any, log *slog.Logger) {
	const dir = "/airflow/xcom"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return
	}
	data, err := json.Marshal(res)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "return.json"), data, 0o644)
	}
	if err != nil {
		log.Warn("could not write airflow xcom", "err", err)
	}
}
