// Package configs owns Shelf's configuration tree: defaults, strict YAML
// loading, SHELF_* environment overrides and validation. The same file serves
// every environment; only --date, --events-url and --output-url change.
package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole effective configuration of one run.
type Config struct {
	Name string `yaml:"name"` // model name under models/<name>/
	Date string `yaml:"date"` // as-of date YYYY-MM-DD (normally a flag)
	Seed int64  `yaml:"seed"` // every random choice (negatives, initialisation, sampling) derives from it
	// LockLeaseSeconds bounds how long a killed run blocks its date: its
	// lock expires this long after the last refresh (every third of it).
	LockLeaseSeconds int             `yaml:"lock_lease_seconds"`
	Storage          StorageConfig   `yaml:"storage"`
	Events           EventsConfig    `yaml:"events"`
	Output           OutputConfig    `yaml:"output"`
	Split            SplitConfig     `yaml:"split"`
	Train            TrainConfig     `yaml:"train"`
	Sequence         SequenceConfig  `yaml:"sequence"`
	Baselines        BaselinesConfig `yaml:"baselines"`
	Eval             EvalConfig      `yaml:"eval"`
	Gate             GateConfig      `yaml:"gate"`
	Score            ScoreConfig     `yaml:"score"`
	Purchase         PurchaseConfig  `yaml:"purchase"`
	Metrics          MetricsConfig   `yaml:"metrics"`
	Catalog          CatalogConfig   `yaml:"catalog"`
	Privacy          PrivacyConfig   `yaml:"privacy"`
}

// PrivacyConfig points at the erasure list: users whose events no run may
// use from then on.
type PrivacyConfig struct {
	// ForgetURL is the list's object URL — the bucket URL with the key as
	// its path: file:///etc/shelf/forget.txt, s3://bucket/privacy/forget.parquet?region=…,
	// or a prefix ending in "/" whose objects are all read. Text: one user id
	// per line ('#' comments, an optional "user_id" header); Parquet: a
	// user_id column. Read on every run; its content is part of the version.
	ForgetURL string `yaml:"forget_url"`
}

// StorageConfig bounds every object-store call: a request gets
// timeout_seconds plus the time its bytes take at min_bytes_per_second, and
// is retried (attempts in all) with exponential back-off.
type StorageConfig struct {
	TimeoutSeconds    float64 `yaml:"timeout_seconds"`      // floor of every request's deadline
	MinBytesPerSecond float64 `yaml:"min_bytes_per_second"` // slowest transfer rate tolerated
	Attempts          int     `yaml:"attempts"`             // tries per call, the first included
}

// CatalogConfig locates the optional item catalog: one Parquet file, or every
// *.parquet under a prefix (with dt=YYYY-MM-DD partitions, only the newest
// one on or before the as-of date). Read by events.ReadCatalog.
type CatalogConfig struct {
	URL     string               `yaml:"url"`  // bucket URL; empty = events.url
	Path    string               `yaml:"path"` // key ending in .parquet, or a prefix; empty = no catalog
	Columns CatalogColumnsConfig `yaml:"columns"`
}

// Enabled reports whether a catalog is configured.
func (c CatalogConfig) Enabled() bool { return c.Path != "" }

// Prefix is the key prefix to list: Path itself for a .parquet key, else
// Path as a folder.
func (c CatalogConfig) Prefix() string {
	if strings.HasSuffix(c.Path, ".parquet") {
		return c.Path
	}
	return strings.TrimSuffix(c.Path, "/") + "/"
}

// CatalogInEvents returns the catalog's key prefix when it lives in the
// events bucket, where ingest must skip it (events.Options.Skip), else "".
func (c Config) CatalogInEvents() string {
	if !c.Catalog.Enabled() || (c.Catalog.URL != "" && c.Catalog.URL != c.Events.URL) {
		return ""
	}
	return c.Catalog.Prefix()
}

// CatalogColumnsConfig maps the catalog's logical columns to its column
// names; empty category or price = absent.
type CatalogColumnsConfig struct {
	Item     string `yaml:"item_id"`  // item id column (string or integer), matched to the events' item ids
	Category string `yaml:"category"` // category column (string or integer); empty = none
	Price    string `yaml:"price"`    // price column (number); empty = none
}

// LimitsConfig bounds what one Parquet input may make the reader decode,
// against decompression bombs and absurd rows. The sizes are uncompressed
// bytes of the columns read (projected), as the file's metadata declares
// them, checked before decoding; values and buffers are checked again while
// decoding. 0 for a byte size means "from the memory this process may use"
// (an eighth of it per column chunk, a quarter per row group): what is
// dangerous is what cannot be held, not a high compression ratio — a
// constant or plain-encoded column legitimately compresses 1000:1 and more.
type LimitsConfig struct {
	MaxRowsPerFile      int64   `yaml:"max_rows_per_file"`      // rows one Parquet file may declare
	MaxRowGroupBytes    int64   `yaml:"max_row_group_bytes"`    // Σ projected column chunks of one row group; 0 = budget/4
	MaxColumnChunkBytes int64   `yaml:"max_column_chunk_bytes"` // one projected column chunk, also the largest decoding buffer; 0 = budget/8
	MaxCompressionRatio float64 `yaml:"max_compression_ratio"`  // uncompressed / compressed of a column chunk of >= 1 MiB; 0 = no ratio check
	MaxValueBytes       int64   `yaml:"max_value_bytes"`        // one string or binary value
}

// DefaultLimits are generous for real dumps and far below what would
// exhaust a worker's memory.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxRowsPerFile: 1_000_000_000,
		MaxValueBytes:  1 << 20,
	}
}

// MetricsConfig says where run metrics go.
type MetricsConfig struct {
	PushgatewayURL string `yaml:"pushgateway_url"` // e.g. http://pushgateway:9091; empty = no push
}

// PurchaseConfig controls the purchase-prediction model ("who buys what in
// the next horizon_days").
type PurchaseConfig struct {
	Enabled      bool    `yaml:"enabled"`       // train and publish purchase predictions (a log too short for them skips the stage, with its reason)
	HorizonDays  int     `yaml:"horizon_days"`  // 0 = 7, or less on logs shorter than four weeks
	Cutoffs      int     `yaml:"cutoffs"`       // rolling training cut-offs before the held-out one; 0 = as many as the data holds, up to 8
	Hidden       []int   `yaml:"hidden"`        // hidden layer sizes of the purchase MLP
	Epochs       int     `yaml:"epochs"`        // most epochs (early stopping on the latest training cut-off)
	BatchSize    int     `yaml:"batch_size"`    // rows per Adam step
	LearningRate float64 `yaml:"learning_rate"` // Adam step size
	L2           float64 `yaml:"l2"`            // weight decay
	Patience     int     `yaml:"patience"`      // epochs without improvement before stopping
	TopItems     int     `yaml:"top_items"`     // predicted items per user in the table
	Tolerance    float64 `yaml:"tolerance"`     // gate: model log-loss <= best baseline × (1 + tolerance)
	WindowsDays  IntList `yaml:"windows_days"`  // look-back windows of the per-event-type count features
	// ItemBlend is the grid of weights of the ranking recommender against
	// the user's own history in the predicted items, chosen on validation.
	ItemBlend []float64 `yaml:"item_blend"`
}

// EventsConfig says where the behaviour dumps are and how to read them.
type EventsConfig struct {
	URL              string            `yaml:"url"`           // bucket URL of the dumps (gocloud)
	LookbackDays     int               `yaml:"lookback_days"` // window is [D+1-lookback, D+1)
	Columns          ColumnsConfig     `yaml:"columns"`
	Timestamp        TimestampConfig   `yaml:"timestamp"`
	EventTypes       []EventTypeConfig `yaml:"event_types"`        // {name, weight, purchase}: the event_type values, their interaction weight, and which are purchases
	DefaultEventType string            `yaml:"default_event_type"` // type of rows without an event_type column, or of unknown values when unknown_event_type=default
	UnknownEventType string            `yaml:"unknown_event_type"` // reject | default
	Filters          []FilterConfig    `yaml:"filters"`            // {name, column, op, value}, op one of > >= < <= == != not_null prefix not_prefix; failing rows are rejected as filtered_<name> (not counted in the reject ratio)
	MaxRejectRatio   float64           `yaml:"max_reject_ratio"`   // share of rejected rows (filters excluded) over which the run fails (exit 2), naming the worst file and reason
	ReadBufferSize   int               `yaml:"read_buffer_size"`   // bytes per range read on object stores
	IngestShards     int               `yaml:"ingest_shards"`      // 0: train, score and run read the dumps themselves; N: they merge the N shards shelf ingest --shard i --shards N wrote for the date (same events, version and tables)
	Limits           LimitsConfig      `yaml:"limits"`             // for every Parquet input, the catalog too
}

// ColumnsConfig maps logical columns to the dump's column names; empty = absent.
type ColumnsConfig struct {
	User      string `yaml:"user_id"`    // user id: string, integer or double (integral) column; required
	Item      string `yaml:"item_id"`    // item id: string or integer column; required
	EventType string `yaml:"event_type"` // string column of event type names; empty = every row is events.default_event_type
	TS        string `yaml:"ts"`         // Parquet timestamp, integer epoch (events.timestamp.unit) or string (events.timestamp.layout); required
	Session   string `yaml:"session_id"` // optional session id column
	Quantity  string `yaml:"quantity"`   // optional quantity column (number); non-positive or non-finite values are rejected rows
	Price     string `yaml:"price"`      // optional unit price column (number), for the purchase model's spend features
	Query     string `yaml:"query"`      // optional search query column (kept for search events)
}

// TimestampConfig says how to read the ts column when it is not a Parquet timestamp.
type TimestampConfig struct {
	Unit     string `yaml:"unit"`     // s | ms | us | ns, for integer epochs
	Layout   string `yaml:"layout"`   // Go time layout, for strings
	Timezone string `yaml:"timezone"` // IANA zone of string timestamps and of the as-of date
}

// EventTypeConfig maps an event_type value to its interaction weight.
type EventTypeConfig struct {
	Name     string  `yaml:"name"`
	Weight   float32 `yaml:"weight"`
	Purchase bool    `yaml:"purchase"`
}

// FilterConfig keeps only rows satisfying `column op value`; others are
// counted as rejected with reason "filtered_<name>" (not towards max_reject_ratio).
type FilterConfig struct {
	Name   string `yaml:"name"`
	Column string `yaml:"column"`
	Op     string `yaml:"op"` // > >= < <= == != not_null prefix not_prefix
	Value  string `yaml:"value"`
}

// OutputConfig says where artifacts and tables go.
type OutputConfig struct {
	URL string `yaml:"url"` // bucket URL for model versions, tables and run reports (file:// creates the directory)
}

// SplitConfig defines the temporal holdout.
type SplitConfig struct {
	TestDays       int `yaml:"test_days"`       // last days before D+1 held out for the test; 0 = from the data
	ValidationDays int `yaml:"validation_days"` // last days of the training period for early stopping; 0 = from the data
	// TargetUsers is what windows chosen from the data aim for: the
	// shortest window holding this many users with targets.
	TargetUsers int `yaml:"target_users"`
}

// TrainConfig holds the ranking model's hyper-parameters.
type TrainConfig struct {
	Dim          int     `yaml:"dim"`           // embedding size of users and items
	Hidden       []int   `yaml:"hidden"`        // hidden layer sizes of the MLP head
	Epochs       int     `yaml:"epochs"`        // most epochs (early stopping on the validation window)
	BatchSize    int     `yaml:"batch_size"`    // positives per Adam step
	LearningRate float64 `yaml:"learning_rate"` // Adam step size
	Negatives    int     `yaml:"negatives"`     // sampled negatives per positive
	NegSampling  string  `yaml:"neg_sampling"`  // uniform | popularity
	NegAlpha     float64 `yaml:"neg_alpha"`     // popularity^alpha sampling
	Loss         string  `yaml:"loss"`          // bce | bpr
	L2           float64 `yaml:"l2"`            // L2 on the embedding rows a step touches and the head's weights
	Dropout      float64 `yaml:"dropout"`       // of the MLP head's hidden units while training; 0 = none
	// EpochPositives caps the positives one epoch trains on (a fresh seeded
	// sample each epoch); 0 = all. Bounds an epoch's time on large logs.
	EpochPositives int     `yaml:"epoch_positives"`
	Patience       int     `yaml:"patience"`       // epochs without validation improvement before stopping
	HalfLifeDays   float64 `yaml:"half_life_days"` // time decay of interaction weights; 0 = none
	Refit          bool    `yaml:"refit"`          // refit on train+test for the published model
	// BatchShards splits every training batch (the neural model's and the
	// sequence encoder's) into that many shares whose gradients are summed
	// in a fixed order: it defines the result (and how many cores one step
	// can use); Workers only schedules the shares (and the encoder's state
	// batches).
	BatchShards   int `yaml:"batch_shards"`
	Workers       int `yaml:"workers"`            // goroutines; 0 = the CPUs this process may use (cgroup quota)
	CheckpointSec int `yaml:"checkpoint_seconds"` // training checkpoints (weights, Adam moments, sampler) at most this often, uploaded in the background
	// BlendKNN and BlendPopularity are the weights of ItemKNN and recent
	// popularity tried (as pairs with a sum < 1) on the validation window for
	// the published hybrid ranker; [0] and [0] = the neural model alone.
	BlendKNN        []float64 `yaml:"blend_knn"`
	BlendPopularity []float64 `yaml:"blend_popularity"` // recent popularity's weights tried with each blend_knn value
	// KNNHistoryHalfLifeDays are the half-lives tried (on the validation
	// window) for the age of a user's history items in the hybrid's ItemKNN
	// component: recently bought items predict the next ones best. 0 = no decay.
	KNNHistoryHalfLifeDays []float64 `yaml:"knn_history_half_life_days"`
	// KNNHistoryHalfLifeEvents are the half-lives tried (after the grids
	// above, for the best of them) in recency rank: a user's most recent
	// item weighs 1, the n-th most recent 0.5^(n/h) on top of its age decay,
	// so what the user just did leads the list however far apart the events
	// are in time (a log of sparse reviews, a session of views). 0 = off.
	KNNHistoryHalfLifeEvents []float64 `yaml:"knn_history_half_life_events"`
	// ItemSimilarity are the item-item models tried (on the validation
	// window) for the hybrid's item component: cosine (ItemKNN), rp3beta
	// (random walk with popularity penalty) and ease (EASE^R, closed form;
	// only for catalogues of at most ease_max_items items).
	ItemSimilarity []string `yaml:"item_similarity"`
	// RP3Beta are the popularity exponents tried for rp3beta.
	RP3Beta []float64 `yaml:"rp3beta_beta"`
	// EASELambda are the L2 weights tried for ease, as multiples of the
	// mean item degree (mean of diag XᵀX), so one grid fits shops of any size.
	EASELambda []float64 `yaml:"ease_lambda"`
	// EASEMaxItems bounds the catalogue ease is tried on: its cost is
	// about (5/3)·items³ float32 operations and 8·items² bytes.
	EASEMaxItems int `yaml:"ease_max_items"`
}

// SequenceConfig is the sequence encoder: a causal self-attention stack
// (SASRec-style) over each user's last max_len events (item, position and
// event-type embeddings) whose state scores every item by dot product. It
// is one more component of the published hybrid: fitted with early stopping
// on the validation window, its weight chosen there from blend (0 = left
// out), and its states computed from each user's history up to the as-of
// date when the table is scored.
type SequenceConfig struct {
	Enabled      bool    `yaml:"enabled"`       // fit the encoder and try it in the hybrid
	Dim          int     `yaml:"dim"`           // embedding and state size (a multiple of heads)
	MaxLen       int     `yaml:"max_len"`       // a user's most recent events the encoder reads
	Blocks       int     `yaml:"blocks"`        // self-attention blocks
	Heads        int     `yaml:"heads"`         // attention heads per block
	Epochs       int     `yaml:"epochs"`        // most epochs (early stopping on the validation window)
	BatchSize    int     `yaml:"batch_size"`    // sequences per Adam step
	LearningRate float64 `yaml:"learning_rate"` // Adam step size
	Dropout      float64 `yaml:"dropout"`       // of the input embeddings while training
	Patience     int     `yaml:"patience"`      // epochs without validation improvement before stopping
	// EpochSequences caps the users' sequences one epoch trains on (a fresh
	// seeded sample each epoch; 0 = all): bounds an epoch's time on large
	// logs (about 5M positions at the default).
	EpochSequences int `yaml:"epoch_sequences"`
	// Negatives > 0: the training loss is a softmax over each position's
	// next item and that many negatives shared by the batch (sampled
	// uniformly); 0: binary cross-entropy with one negative per position,
	// as SASRec.
	Negatives int `yaml:"negatives"`
	// TimeGaps adds an embedding of the time since the user's previous
	// event (16 log-scale buckets). Off by default: it lowered validation
	// and leave-one-out NDCG on both logs measured (docs/quality.md).
	TimeGaps bool `yaml:"time_gaps"`
	// Blend are the encoder's weights tried in the hybrid (the other
	// components' weights scaled by 1 − w); 0 = the hybrid without it (a
	// grid without 0 always blends the encoder in).
	Blend []float64 `yaml:"blend"`
}

// BaselinesConfig tunes the plain-Go baselines.
type BaselinesConfig struct {
	PopularityHalfLifeDays float64 `yaml:"popularity_half_life_days"` // time decay of the popularity baseline's counts
	// ItemKNNNeighbors are the neighbour-list lengths tried on the validation
	// window (a single number is a one-value list): the baseline and the
	// hybrid's ItemKNN component each keep the best.
	ItemKNNNeighbors IntList `yaml:"itemknn_neighbors"`
	ItemKNNWeighting string  `yaml:"itemknn_weighting"` // log1p (of decayed type weights) | binary
}

// EvalConfig says what the holdouts (validation, test) measure.
type EvalConfig struct {
	Ks []int `yaml:"ks"` // cut-offs of HR, Recall, NDCG, MAP and coverage
	// Targets are the event types whose items count as a user's next
	// interactions in a holdout: "any" (default) = every type. An item the
	// table would exclude for the user (score.exclude) is never a target,
	// so the gate measures what the table is judged on.
	Targets []string `yaml:"targets"`
	// MinUsers is the evidence a holdout needs: with fewer users holding
	// targets, selection keeps its priors and the gate publishes the best
	// baseline's table, and says so.
	MinUsers int `yaml:"min_users"`
}

// GateConfig decides whether a new version may become LATEST.
type GateConfig struct {
	Metric    string  `yaml:"metric"`    // e.g. ndcg@10
	Tolerance float64 `yaml:"tolerance"` // relative: model >= best*(1-tolerance)
}

// ScoreConfig controls the published recommendation table.
type ScoreConfig struct {
	K          int `yaml:"k"`          // recommendations per user in the table
	Candidates int `yaml:"candidates"` // candidates per source (model retrieval, item component, popularity) the hybrid blends
	// Exclude says which items a user's table leaves out: "seen" (default:
	// every item the user interacted with), "none", or event type names
	// (e.g. [purchase]: bought items only). The holdouts exclude the same.
	Exclude []string `yaml:"exclude"`
	// ExcludePurchased is the earlier spelling: true = [purchase types],
	// false = none. Set either it or exclude.
	ExcludePurchased *bool `yaml:"exclude_purchased,omitempty"`
	// Index is how the dot-product retrieval finds each user's candidates:
	// "auto" (default) through an IVF index when the catalog has at least
	// index_min_items items, "ivf" always, "exact" never. An index is used
	// only when its recall of the exact candidates, measured on a sample of
	// users in the run, reaches min_retrieval_recall; else the run scores
	// exactly and says why.
	Index              string  `yaml:"index"`
	IndexMinItems      int     `yaml:"index_min_items"`      // the catalog size from which score.index auto builds an index
	MinRetrievalRecall float64 `yaml:"min_retrieval_recall"` // the recall of the exact top candidates an index must measure to serve (docs/performance.md#retrieval-index)
	Shards             int     `yaml:"shards"`               // table parts (shelf run) and the shard count shelf score/commit expect by default
	Workers            int     `yaml:"workers"`              // goroutines scoring blocks; 0 = the CPUs this process may use
}

// TypeMask is one flag per event type of events.event_types; nil = all.
type TypeMask []bool

// Has reports whether type t is in the mask.
func (m TypeMask) Has(t uint8) bool { return m == nil || int(t) < len(m) && m[t] }

// typeMask resolves names ("any"/"seen" = all, "none" = no type).
func (c Config) typeMask(names []string, all string) TypeMask {
	if slices.Contains(names, all) {
		return nil
	}
	m := make(TypeMask, len(c.Events.EventTypes))
	for i, t := range c.Events.EventTypes {
		m[i] = slices.Contains(names, t.Name)
	}
	return m
}

// TargetTypes is eval.targets as a mask over events.event_types.
func (c Config) TargetTypes() TypeMask { return c.typeMask(c.Eval.Targets, "any") }

// ExcludedTypes is score.exclude (or exclude_purchased) as a mask; nil =
// every type (all seen items).
func (c Config) ExcludedTypes() TypeMask {
	if p := c.Score.ExcludePurchased; p != nil {
		m := make(TypeMask, len(c.Events.EventTypes))
		for i, t := range c.Events.EventTypes {
			m[i] = *p && t.Purchase
		}
		return m
	}
	return c.typeMask(c.Score.Exclude, "seen")
}

// Default returns the defaults every file overrides.
func Default() Config {
	return Config{
		Name:             "ranking",
		Seed:             42,
		LockLeaseSeconds: 30,
		Storage:          StorageConfig{TimeoutSeconds: 30, MinBytesPerSecond: 1 << 20, Attempts: 5},
		Events: EventsConfig{
			LookbackDays: 365,
			Columns: ColumnsConfig{User: "user_id", Item: "item_id", EventType: "event_type", TS: "ts",
				Quantity: "", Price: ""},
			Timestamp:        TimestampConfig{Unit: "ms", Timezone: "UTC"},
			EventTypes:       []EventTypeConfig{{Name: "view", Weight: 1}, {Name: "cart", Weight: 3}, {Name: "favorite", Weight: 2}, {Name: "purchase", Weight: 5, Purchase: true}},
			UnknownEventType: "reject",
			MaxRejectRatio:   0.01,
			ReadBufferSize:   4 << 20,
			Limits:           DefaultLimits(),
		},
		Split: SplitConfig{TargetUsers: 1000}, // windows chosen from the data
		Train: TrainConfig{Dim: 32, Hidden: []int{64, 64}, Epochs: 20, BatchSize: 512, LearningRate: 0.003,
			Negatives: 4, NegSampling: "popularity", NegAlpha: 0.5, Loss: "bce", L2: 1e-6, Patience: 3,
			Refit: true, BatchShards: 2, Workers: 0, CheckpointSec: 60, BlendKNN: []float64{0, 0.25, 0.5, 0.75}, BlendPopularity: []float64{0, 0.15, 0.3},
			KNNHistoryHalfLifeDays: []float64{0, 90, 30, 10}, KNNHistoryHalfLifeEvents: []float64{0, 1, 3, 10},
			ItemSimilarity: []string{"cosine", "rp3beta", "ease"}, RP3Beta: []float64{0, 0.15, 0.3, 0.5}, EASELambda: []float64{1, 4, 16, 64}, EASEMaxItems: 12000},
		Sequence: SequenceConfig{Enabled: true, Dim: 32, MaxLen: 50, Blocks: 2, Heads: 2, Epochs: 30, BatchSize: 128,
			LearningRate: 0.005, Dropout: 0.2, Patience: 3, EpochSequences: 100000, Negatives: 256, Blend: []float64{0, 0.15, 0.3, 0.5}},
		Baselines: BaselinesConfig{PopularityHalfLifeDays: 14, ItemKNNNeighbors: IntList{10, 20, 50, 100}, ItemKNNWeighting: "binary"},
		Eval:      EvalConfig{Ks: []int{10, 20}, Targets: []string{"any"}, MinUsers: 50},
		Gate:      GateConfig{Metric: "ndcg@10", Tolerance: 0},
		Score: ScoreConfig{K: 20, Candidates: 200, Exclude: []string{"seen"}, Shards: 1,
			Index: "auto", IndexMinItems: 50000, MinRetrievalRecall: 0.99},
		Purchase: PurchaseConfig{Enabled: true, Hidden: []int{32, 16}, Epochs: 40, BatchSize: 256,
			LearningRate: 0.003, L2: 1e-5, Patience: 5, TopItems: 10, WindowsDays: IntList{1, 7, 30, 90},
			ItemBlend: []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}},
		Catalog: CatalogConfig{Columns: CatalogColumnsConfig{Item: "item_id"}},
	}
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("load config: %w", err)
	}
	if err := Decode(b, &cfg); err != nil {
		return cfg, fmt.Errorf("load config %s: %w", path, err)
	}
	return cfg, nil
}

// Decode strictly decodes YAML bytes onto cfg (fields not named keep their value).
func Decode(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // empty file = defaults
		return explain(err)
	}
	return nil
}

// Marshal renders the effective config as YAML (the artifact's config.yaml).
func (c Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// ApplyEnv overrides scalar and list settings from SHELF_<PATH> variables, the
// path being the YAML keys joined by "_" in upper case (SHELF_TRAIN_EPOCHS,
// SHELF_EVENTS_URL). Lists are comma-separated.
func (c *Config) ApplyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SHELF_") {
			env[k] = v
		}
	}
	var errs []error
	known := map[string]bool{}
	walk(reflect.ValueOf(c).Elem(), "SHELF", func(name string, f reflect.Value) {
		known[name] = true
		v, ok := env[name]
		if !ok {
			return
		}
		if err := setScalar(f, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	var unknown []string
	for k := range env {
		if !known[k] && !slices.Contains(NonSettingEnv(), k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	var names []string
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range unknown {
		near := nearest(k, names)
		if !ours(k, names, near) {
			continue // another tool's variable (SHELF_TEST_MINIO, SHELF_CI_CACHE)
		}
		if near != "" {
			errs = append(errs, fmt.Errorf("%s: unknown setting — did you mean %s?", k, near))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown setting", k))
	}
	return errors.Join(errs...)
}

// ours tells whether an unknown SHELF_* variable was meant for the config:
// its first word after SHELF_ names a config section or setting
// (SHELF_TRAIN_EPOHCS), or it is within two edits of a setting
// (SHELF_TRIAN_EPOCHS). Others — a test harness's SHELF_TEST_MINIO, a CI
// cache path — are not Shelf's to reject.
func ours(k string, names []string, near string) bool {
	seg, _, _ := strings.Cut(strings.TrimPrefix(k, "SHELF_"), "_")
	for _, n := range names {
		if n == "SHELF_"+seg || strings.HasPrefix(n, "SHELF_"+seg+"_") {
			return true
		}
	}
	return near != "" && editDistance(k, near) <= 2
}

// NonSettingEnv lists the SHELF_* variables that are read by the command,
// not by the config tree (ApplyEnv accepts and ignores them).
func NonSettingEnv() []string {
	return []string{"SHELF_CONFIG", "SHELF_LOG_FORMAT", "SHELF_LOG_LEVEL", "SHELF_PSEUDONYM_KEY", "SHELF_SUPERVISED_FD", "SHELF_NO_SUPERVISOR", "SHELF_CPU_PROFILE", "SHELF_HEAP_PROFILE"}
}

// EnvNames lists every SHELF_* setting (for docs and tests).
func EnvNames() []string {
	var out []string
	c := Default()
	walk(reflect.ValueOf(&c).Elem(), "SHELF", func(name string, _ reflect.Value) { out = append(out, name) })
	return out
}

func walk(v reflect.Value, prefix string, fn func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			walk(f, name, fn)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			// lists of structs (event types, filters) are file-only
		default:
			fn(name, f)
		}
	}
}

func setScalar(f reflect.Value, s string) error {
	switch f.Kind() {
	case reflect.Pointer:
		v := reflect.New(f.Type().Elem())
		if err := setScalar(v.Elem(), s); err != nil {
			return err
		}
		f.Set(v)
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case reflect.Slice:
		parts := strings.Split(s, ",")
		sl := reflect.MakeSlice(f.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setScalar(sl.Index(i), strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		f.Set(sl)
	default:
		return fmt.Errorf("unsupported kind %s", f.Kind())
	}
	return nil
}

// AsOf parses Date in the configured time zone and returns the exclusive end
// of the data window: midnight after D.
func (c Config) AsOf() (day time.Time, end time.Time, err error) {
	loc, err := time.LoadLocation(c.Events.Timestamp.Timezone)
	if err != nil {
		return day, end, fmt.Errorf("events.timestamp.timezone: %w", err)
	}
	day, err = time.ParseInLocation("2006-01-02", c.Date, loc)
	if err != nil {
		return day, end, fmt.Errorf("date %q: want YYYY-MM-DD", c.Date)
	}
	return day, day.AddDate(0, 0, 1), nil
}

// IntList is a YAML list of ints that also accepts a single number.
type IntList []int

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *IntList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var v int
		if err := n.Decode(&v); err != nil {
			return err
		}
		*l = IntList{v}
		return nil
	}
	var v []int
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = v
	return nil
}

// Max is the largest value (0 for an empty list).
func (l IntList) Max() int {
	m := 0
	for _, v := range l {
		m = max(m, v)
	}
	return m
}
