package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/model"
)

// Runner executes the stages for one as-of date.
type Runner struct {
	Cfg         configs.Config
	Log         *slog.Logger
	CodeVersion string
	Force       bool             // take over a live lock / recompute a committed date
	Now         func() time.Time // wall clock, only for future-timestamp checks and logs
	Progress    *Progress        // bars or progress lines for long stages (nil: lines)
	// PseudonymKey, when set, replaces every user id in every output by
	// HMAC-SHA256(key, id) (SHELF_PSEUDONYM_KEY in the command).
	PseudonymKey []byte
	// Open opens a bucket URL (default blobs.Open). Buckets it returns are
	// the caller's: the runner does not close them (tests share mem:// buckets).
	Open func(ctx context.Context, url string) (*blob.Bucket, error)
	// EvalSequence turns the sequence encoder on for EvalProtocol even when
	// sequence.enabled is false (shelf eval --sequence).
	EvalSequence bool
}

// Result is what a run tells its caller (and the Airflow XCom file).
type Result struct {
	Date        string                        `json:"date"`
	RunID       string                        `json:"run_id"`
	Version     string                        `json:"version"`
	VersionURI  string                        `json:"version_uri"`
	Gate        tables.GateResult             `json:"gate"`
	Metrics     map[string]map[string]float64 `json:"metrics"`
	Published   bool                          `json:"published"`   // LATEST moved and tables committed
	Skipped     bool                          `json:"skipped"`     // already committed, nothing done
	TablesURI   string                        `json:"tables_uri"`  // recommendations partition
	Accounting  *events.Accounting            `json:"accounting"`  // input rows
	StageTiming []StageTiming                 `json:"stage_times"` // per stage
	// EpochSeconds is each training phase's (select, evaluate, final)
	// epoch wall times; the version's training.json has the rest of each
	// epoch, without its time.
	EpochSeconds map[string][]float64 `json:"epoch_seconds,omitempty"`

	// PurchasePublished: the purchase_predictions partition is committed
	// with Version (also when the ranking gate refused and LATEST stayed).
	PurchasePublished bool `json:"purchase_published"`
	// LatestMoved: this run moved LATEST to Version; Latest says why or why
	// not (LATEST only moves forward in as-of date, and on the same date only
	// to a version that beat it).
	LatestMoved bool   `json:"latest_moved"`
	Latest      string `json:"latest,omitempty"`
	// TableSource is what the date's recommendations table was made from:
	// "model", or the baseline the gate published instead ("" = none).
	TableSource string `json:"table_source"`
	// Windows are the holdout and purchase windows, set or chosen from the data.
	Windows *Windows `json:"windows,omitempty"`
	// Retrieval is how the published table's recommenders retrieved their
	// candidates: exact, or through an IVF index with its measured recall.
	Retrieval []Retrieval `json:"retrieval,omitempty"`
}

// env is the opened state shared by the stages of one invocation.
type env struct {
	r       *Runner
	cfg     configs.Config
	out     *blob.Bucket
	evb     *blob.Bucket
	day     time.Time
	start   time.Time // window start (inclusive)
	end     time.Time // window end (exclusive): midnight after D
	cfgHash string
	cfgYAML []byte
	run     string
	stages  *stageClock
	log     *slog.Logger
	owned   bool // buckets opened here, closed by close()
	pseudo  pseudonym
	catalog *events.Catalog // item attributes when catalog.path is set (read by ingest)
	lock    *blobs.Lock     // the date's lock, when this command holds it
	forget  *forgetList     // the erasure list (privacy.forget_url), read by ingest
	win     *Windows        // the run's windows, chosen after ingest (train)
	items   int             // items in the events read (the largest slice's catalogue)
	noCkpt  bool            // fits neither resume from nor write checkpoints (offline protocols)
	// retrieval records each served recommender's retrieval (exact or
	// through an index, with its measured recall), in build order.
	retrieval []Retrieval
}

func (r *Runner) open(ctx context.Context) (*env, error) {
	cfg := r.Cfg
	if err := cfg.Validate(); err != nil {
		return nil, Permanent(fmt.Errorf("invalid config: %w", err))
	}
	if cfg.Date == "" {
		return nil, Permanent(errors.New("no as-of date: pass --date YYYY-MM-DD"))
	}
	day, end, err := cfg.AsOf()
	if err != nil {
		return nil, Permanent(err)
	}
	st := cfg.Storage
	blobs.Configure(time.Duration(st.TimeoutSeconds*float64(time.Second)), st.MinBytesPerSecond, st.Attempts)
	h, y, err := configHash(cfg)
	if err != nil {
		return nil, Permanent(err)
	}
	e := &env{r: r, cfg: cfg, day: day, end: end, start: end.AddDate(0, 0, -cfg.Events.LookbackDays), cfgHash: h, cfgYAML: y}
	e.pseudo = pseudonym{key: r.PseudonymKey}
	e.run = runKey(cfg.Date, h+e.pseudo.tag(), r.CodeVersion)
	e.log = r.Log.With("date", cfg.Date, "run_id", e.run)
	e.stages = newStageClock(e.log)
	open, openOut := r.Open, r.Open
	if open == nil {
		open, openOut = blobs.Open, blobs.OpenOutput
		e.owned = true
	}
	if e.out, err = openOut(ctx, cfg.Output.URL); err != nil {
		return nil, fmt.Errorf("output.url: %w", err)
	}
	if e.evb, err = open(ctx, cfg.Events.URL); err != nil {
		err = fmt.Errorf("events.url: %w", err)
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if !e.owned {
		return
	}
	for _, b := range []*blob.Bucket{e.out, e.evb} {
		if b != nil {
			b.Close()
		}
	}
}

func (e *env) runPrefix() string { return "runs/" + e.cfg.Date + "/" + e.run + "/" }

// ingest reads the window's events, writing rejects under the run folder.
func (e *env) ingest(ctx context.Context, writeRejects bool) (*model.Interactions, *events.Accounting, []tables.InputObject, error) {
	done := e.stages.begin("ingest")
	var sink *rejectSink
	if writeRejects && e.cfg.Events.IngestShards == 0 { // the ingest shards write their own
		w, err := tables.NewWriter[tables.RejectRow](ctx, e.out, e.runPrefix()+"rejects/part-00000.parquet")
		if err != nil {
			return nil, nil, nil, err
		}
		sink = &rejectSink{w: w, userColumn: e.cfg.Events.Columns.User, pseudo: e.pseudo}
		defer sink.w.Abort() // no-op after a successful Close
	}
	opts, err := e.readOptions(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var in *model.Interactions
	var acc *events.Accounting
	if n := e.cfg.Events.IngestShards; n > 0 {
		// The ingest shards read the dumps (and wrote the rejects, with
		// pseudonymised ids when the run is): merge them.
		if in, acc, err = e.mergeShards(ctx, n); err != nil {
			return nil, nil, nil, err
		}
	} else {
		if sink != nil {
			opts.Rejects = sink
		}
		m := e.meter("ingest", "files", 0)
		opts.Progress = m.files
		in, acc, err = events.Read(ctx, e.evb, opts)
		m.Finish()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("ingest %s: %w", blobs.Redact(e.cfg.Events.URL), err)
		}
		if e.pseudo.on() {
			if err := e.pseudo.apply(in); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if sink != nil {
		if err := sink.flush(); err != nil {
			return nil, nil, nil, err
		}
		if err := sink.w.Close(); err != nil {
			return nil, nil, nil, err
		}
	}
	inputs := inputObjects(acc.Files)
	if e.forget != nil {
		inputs = append(inputs, e.forget.inputs...) // a new list is a new version
	}
	done(slog.Int64("rows", acc.Read), slog.Int64("used", acc.Used), slog.Int64("outside_window", acc.OutsideWindow),
		slog.Int64("duplicate", acc.Duplicate), slog.Int64("forgotten", acc.Forgotten), slog.Int64("users_forgotten", acc.ForgottenUsers), slog.Any("rejected", acc.Rejected), slog.Int("users", in.Users.Len()), slog.Int("items", in.Items.Len()))
	if !acc.Balanced() {
		return nil, nil, nil, fmt.Errorf("ingest: accounting does not balance: %+v", acc)
	}
	if err := acc.Check(e.cfg.Events.MaxRejectRatio); err != nil {
		return nil, nil, nil, err
	}
	if len(in.Events) == 0 {
		return nil, nil, nil, Permanent(fmt.Errorf("ingest: no events in window [%s, %s)", e.start.Format(time.DateOnly), e.end.Format(time.DateOnly)))
	}
	if e.cfg.Catalog.Enabled() {
		cat, files, err := e.readCatalog(ctx, in)
		if err != nil {
			return nil, nil, nil, err
		}
		e.catalog = cat
		inputs = append(inputs, inputObjects(files)...) // a new catalog is a new version
	}
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Key < inputs[j].Key })
	return in, acc, inputs, nil
}

// readOptions reads the erasure list and gives the options every read of
// the window's dumps takes.
func (e *env) readOptions(ctx context.Context) (events.Options, error) {
	forget, err := e.readForget(ctx)
	if err != nil {
		return events.Options{}, err
	}
	e.forget = forget
	opts := events.Options{Config: e.cfg.Events, Start: e.start, End: e.end, Now: e.r.Now(),
		Skip: []string{e.cfg.CatalogInEvents()}} // a catalog beside the dumps is not events
	if forget != nil {
		opts.Forget = forget.ids
		if bu, key, _ := blobs.SplitObjectURL(e.cfg.Privacy.ForgetURL); bu == e.cfg.Events.URL {
			opts.Skip = append(opts.Skip, key) // the list beside the dumps is not events
		}
	}
	return opts, nil
}

// inputObjects identifies the files read by their content: the store's
// MD5, else its ETag, else (file://) the SHA-256 of the bytes; the
// modification time only when a store offers none of them.
func inputObjects(files []events.FileStat) []tables.InputObject {
	var inputs []tables.InputObject
	for _, f := range files {
		o := tables.InputObject{Key: f.Key, Size: f.Size, MD5: f.MD5, ETag: f.ETag, SHA256: f.SHA256}
		if f.MD5 == "" && f.ETag == "" && f.SHA256 == "" && !f.ModTime.IsZero() {
			o.ModTime = f.ModTime.UTC().Format(time.RFC3339Nano)
		}
		inputs = append(inputs, o)
	}
	return inputs
}

// rejectSink buffers rejected rows into the run's rejects Parquet file.
type rejectSink struct {
	w          *tables.Writer[tables.RejectRow]
	buf        []tables.RejectRow
	userColumn string
	pseudo     pseudonym
}

func (s *rejectSink) Reject(r events.Reject) error {
	if s.pseudo.on() && r.Column == s.userColumn && r.Value != "" {
		r.Value = s.pseudo.id(r.Value)
	}
	s.buf = append(s.buf, tables.RejectRow{File: r.File, Row: r.Row, Column: r.Column, Reason: r.Reason, Value: r.Value})
	if len(s.buf) >= 4096 {
		return s.flush()
	}
	return nil
}

func (s *rejectSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	return err
}
