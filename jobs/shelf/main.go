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
	"strings"
	"syscall"
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
  shelf train    --date D --config FILE [...]     ingest → train → evaluate → gate → publish version
  shelf score    --date D --config FILE --shard i --shards N   (default shard: $JOB_COMPLETION_INDEX)
  shelf commit   --date D --config FILE --shards N              check parts, _SUCCESS, move LATEST
  shelf backfill --from D1 --to D2 --config FILE [--parallel N] [--force]
  shelf demo     [--output-url URL]             whole pipeline on the bundled sample into ./shelf-out
  shelf eval     --date D --config FILE [--version V | --forward-days N]  recompute a version's holdout metrics, or score a published table on later days
  shelf tune     --date D --config FILE [--trials N] [--out FILE]  seeded hyper-parameter search on the validation window; writes the best config
  shelf inspect  --config FILE [--output-url URL] [--date D --user U]   list versions and LATEST, or a user's rows
  shelf gen      --url URL [--events N --users N --items N --days N --end D --seed S]   synthetic dumps
  shelf bench    [--out DIR] [--events N]    stage throughput vs the machine's limits and PyTorch (bench.md/json)
  shelf version

Settings: defaults → --config YAML (or $SHELF_CONFIG) → SHELF_* environment → flags.
--date accepts YYYY-MM-DD, "today" or "yesterday" (UTC).
Exit codes: 0 ok, 1 retryable (I/O, interrupted), 2 permanent (bad config or data, gate refused, lock held).
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
	progress, logw := progressOn(stderr)
	defer progress.Close()
	log := newLogger(environ, logw)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cmd, rest := args[0], args[1:]
	var res any
	var err error
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, version)
		return jobs.ExitOK
	case "run", "train", "score", "commit", "demo":
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
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		writeXCom(res, log)
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

func newLogger(environ []string, w io.Writer) *slog.Logger {
	format, level := "json", slog.LevelInfo
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
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// progressOn draws progress bars when stderr is a terminal, with the log
// lines written through it (above the bars); otherwise progress is logged
// as periodic lines. It returns the progress settings and the log writer.
func progressOn(stderr io.Writer) (*jobs.Progress, io.Writer) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
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

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML config file (default $SHELF_CONFIG)")
	fs.StringVar(&c.date, "date", "", "as-of date YYYY-MM-DD, today or yesterday (UTC)")
	fs.StringVar(&c.eventsURL, "events-url", "", "bucket URL of the behaviour dumps")
	fs.StringVar(&c.outputURL, "output-url", "", "bucket URL for artifacts and tables")
	fs.BoolVar(&c.force, "force", false, "take over another run's lock and recompute committed output")
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
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var c common
	c.register(fs)
	shard := fs.Int("shard", -1, "score: shard index (default $JOB_COMPLETION_INDEX)")
	shards := fs.Int("shards", 0, "score/commit: number of shards (default score.shards)")
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
	r := &jobs.Runner{Cfg: cfg, Log: log, CodeVersion: version, Force: c.force, Now: time.Now, Progress: progress,
		PseudonymKey: []byte(lookup(environ, "SHELF_PSEUDONYM_KEY"))}
	t0 := time.Now()
	res, err := dispatch(ctx, cmd, r, *shard, environ)
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

func dispatch(ctx context.Context, cmd string, r *jobs.Runner, shard int, environ []string) (*jobs.Result, error) {
	switch cmd {
	case "run", "demo":
		return r.Run(ctx)
	case "train":
		return r.Train(ctx)
	case "score":
		if shard < 0 {
			v := lookup(environ, "JOB_COMPLETION_INDEX")
			if _, err := fmt.Sscanf(v, "%d", &shard); err != nil {
				return nil, jobs.Permanent(fmt.Errorf("score: pass --shard or set JOB_COMPLETION_INDEX (got %q)", v))
			}
		}
		return r.Score(ctx, shard, r.Cfg.Score.Shards)
	default:
		return r.Commit(ctx, r.Cfg.Score.Shards)
	}
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
