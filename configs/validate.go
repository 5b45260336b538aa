package configs

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Bounds on sizes: far above anything a shop needs, far below what would
// exhaust a machine before the data is even read (a batch of 2·10⁹ rows or
// a layer of 10⁸ units is an out-of-memory crash, not a model). Sizes that
// depend on the data (embedding tables) are checked after ingest against
// the memory the process may use.
const (
	maxDim        = 1024
	maxHidden     = 4096
	maxLayers     = 8
	maxBatch      = 1 << 20
	maxEpochs     = 10_000
	maxNegatives  = 1_000
	maxK          = 10_000
	maxCandidates = 100_000
	maxNeighbors  = 10_000
	maxShards     = 4_096
	maxWorkers    = 1_024
	maxDays       = 36_500
	maxLeaseSec   = 86_400
	maxGrid       = 64 // values in one selection grid
)

// nameRE is a model name: a path segment of its own.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checker collects every problem of a config.
type checker struct{ errs []error }

func (c *checker) bad(format string, a ...any) { c.errs = append(c.errs, fmt.Errorf(format, a...)) }

// num requires a finite v within [lo, hi] (or (lo, hi] when openLo).
func (c *checker) num(name string, v, lo, hi float64, openLo bool) {
	ok := !math.IsNaN(v) && !math.IsInf(v, 0) && v <= hi && (v > lo || !openLo && v == lo)
	if !ok {
		l := "["
		if openLo {
			l = "("
		}
		c.bad("%s %v: must be a finite number in %s%g, %g]", name, v, l, lo, hi)
	}
}

// count requires lo <= v <= hi.
func (c *checker) count(name string, v, lo, hi int) {
	if v < lo || v > hi {
		c.bad("%s %d: must be in %d..%d", name, v, lo, hi)
	}
}

// grid checks a list of candidate values: 1..maxGrid finite values in [lo, hi].
func (c *checker) grid(name string, vs []float64, lo, hi float64, openHi bool) {
	if len(vs) == 0 || len(vs) > maxGrid {
		c.bad("%s: need 1..%d values, have %d", name, maxGrid, len(vs))
	}
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi || openHi && v == hi {
			r := "]"
			if openHi {
				r = ")"
			}
			c.bad("%s: %v must be a finite number in [%g, %g%s", name, v, lo, hi, r)
		}
	}
}

// Validate returns every problem of the config at once.
func (c Config) Validate() error {
	var k checker
	bad := k.bad
	if !nameRE.MatchString(c.Name) || strings.Trim(c.Name, ".") == "" {
		bad("name %q: must be 1..128 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if c.Date != "" {
		if _, err := time.Parse("2006-01-02", c.Date); err != nil {
			bad("date %q: want YYYY-MM-DD", c.Date)
		}
	}
	k.count("lock_lease_seconds", c.LockLeaseSeconds, 1, maxLeaseSec)
	k.num("storage.timeout_seconds", c.Storage.TimeoutSeconds, 0, 3600, true)
	k.num("storage.min_bytes_per_second", c.Storage.MinBytesPerSecond, 0, 1e12, true)
	k.count("storage.attempts", c.Storage.Attempts, 1, 20)
	e := c.Events
	if e.URL == "" {
		bad("events.url: required (flag --events-url or SHELF_EVENTS_URL)")
	}
	if c.Output.URL == "" {
		bad("output.url: required (flag --output-url or SHELF_OUTPUT_URL)")
	}
	k.count("events.lookback_days", e.LookbackDays, 1, maxDays)
	if e.Columns.User == "" || e.Columns.Item == "" || e.Columns.TS == "" {
		bad("events.columns: user_id, item_id and ts are required")
	}
	switch e.Timestamp.Unit {
	case "s", "ms", "us", "ns":
	default:
		bad("events.timestamp.unit %q: want s, ms, us or ns", e.Timestamp.Unit)
	}
	if _, err := time.LoadLocation(e.Timestamp.Timezone); err != nil {
		bad("events.timestamp.timezone %q: %v", e.Timestamp.Timezone, err)
	}
	if len(e.EventTypes) == 0 || len(e.EventTypes) > 255 {
		bad("events.event_types: need 1..255 types, have %d", len(e.EventTypes))
	}
	names := map[string]bool{}
	for i, t := range e.EventTypes {
		if t.Name == "" || names[t.Name] {
			bad("events.event_types[%d]: name %q empty or repeated", i, t.Name)
		}
		names[t.Name] = true
		if w := float64(t.Weight); math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 || w > 1e6 {
			bad("events.event_types[%d] %s: weight %v must be a finite number in (0, 1e6]", i, t.Name, t.Weight)
		}
	}
	if e.Columns.EventType == "" || e.UnknownEventType == "default" {
		if !names[e.DefaultEventType] {
			bad("events.default_event_type %q: must name one of events.event_types", e.DefaultEventType)
		}
	}
	if e.UnknownEventType != "reject" && e.UnknownEventType != "default" {
		bad("events.unknown_event_type %q: want reject or default", e.UnknownEventType)
	}
	for i, f := range e.Filters {
		if f.Name == "" || f.Column == "" {
			bad("events.filters[%d]: name and column are required", i)
		}
		switch f.Op {
		case ">", ">=", "<", "<=", "==", "!=", "prefix", "not_prefix":
			if f.Op != "prefix" && f.Op != "not_prefix" && f.Op != "==" && f.Op != "!=" {
				if v, err := parseFloat(f.Value); err != nil || math.IsNaN(v) {
					bad("events.filters[%d] %s: op %s needs a number, got %q", i, f.Name, f.Op, f.Value)
				}
			}
		case "not_null":
		default:
			bad("events.filters[%d] %s: op %q: want > >= < <= == != not_null prefix not_prefix", i, f.Name, f.Op)
		}
	}
	k.num("events.max_reject_ratio", e.MaxRejectRatio, 0, 1, false)
	if e.IngestShards < 0 || e.IngestShards > maxShards {
		bad("events.ingest_shards %d: must be in 0..%d (0: the stages read the dumps themselves)", e.IngestShards, maxShards)
	}
	if e.ReadBufferSize < 0 || e.ReadBufferSize > 1<<30 {
		bad("events.read_buffer_size %d: must be in 0..%d", e.ReadBufferSize, 1<<30)
	}
	if l := e.Limits; l.MaxRowsPerFile <= 0 || l.MaxValueBytes <= 0 || l.MaxRowGroupBytes < 0 || l.MaxColumnChunkBytes < 0 {
		bad("events.limits: max_rows_per_file and max_value_bytes must be > 0, max_row_group_bytes and max_column_chunk_bytes >= 0 (0 = from the memory limit)")
	}
	if r := e.Limits.MaxCompressionRatio; math.IsNaN(r) || math.IsInf(r, 0) || r != 0 && r < 1 {
		bad("events.limits.max_compression_ratio %g: must be 0 (no ratio check) or a finite number >= 1", r)
	}
	if cat := c.Catalog; cat.Enabled() {
		if cat.Columns.Item == "" {
			bad("catalog.columns.item_id: required when catalog.path is set")
		}
		if strings.HasPrefix(cat.Path, "/") || slices.Contains(strings.Split(cat.Path, "/"), "..") {
			bad("catalog.path %q: must be a key or prefix relative to the bucket, without .. segments", cat.Path)
		}
	} else if cat.URL != "" {
		bad("catalog.url is set but catalog.path is empty")
	}
	k.count("split.target_users", c.Split.TargetUsers, 1, 10_000_000)
	if c.Split.TestDays < 0 || c.Split.ValidationDays < 0 {
		bad("split: test_days and validation_days must be >= 0 (0 = chosen from the data)")
	}
	if c.Split.TestDays+c.Split.ValidationDays >= e.LookbackDays {
		bad("split: test_days + validation_days (%d) must be < events.lookback_days (%d)", c.Split.TestDays+c.Split.ValidationDays, e.LookbackDays)
	}
	t := c.Train
	k.count("train.dim", t.Dim, 1, maxDim)
	if len(t.Hidden) > maxLayers {
		bad("train.hidden: at most %d layers, have %d", maxLayers, len(t.Hidden))
	}
	for i, h := range t.Hidden {
		k.count(fmt.Sprintf("train.hidden[%d]", i), h, 1, maxHidden)
	}
	k.count("train.epochs", t.Epochs, 1, maxEpochs)
	k.count("train.batch_size", t.BatchSize, 1, maxBatch)
	k.count("train.negatives", t.Negatives, 1, maxNegatives)
	k.count("train.batch_shards", t.BatchShards, 1, 64)
	k.count("train.workers", t.Workers, 0, maxWorkers)
	k.count("score.workers", c.Score.Workers, 0, maxWorkers)
	k.count("train.patience", t.Patience, 0, maxEpochs)
	k.count("train.checkpoint_seconds", t.CheckpointSec, 0, maxLeaseSec)
	k.num("train.learning_rate", t.LearningRate, 0, 1, true)
	if t.NegSampling != "uniform" && t.NegSampling != "popularity" {
		bad("train.neg_sampling %q: want uniform or popularity", t.NegSampling)
	}
	if t.Loss != "bce" && t.Loss != "bpr" {
		bad("train.loss %q: want bce or bpr", t.Loss)
	}
	k.count("train.epoch_positives", t.EpochPositives, 0, math.MaxInt32)
	if math.IsNaN(t.Dropout) || !(t.Dropout >= 0 && t.Dropout < 1) {
		bad("train.dropout %g: want 0 <= p < 1", t.Dropout)
	}
	k.num("train.l2", t.L2, 0, 1, false)
	k.num("train.half_life_days", t.HalfLifeDays, 0, maxDays, false)
	k.num("train.neg_alpha", t.NegAlpha, 0, 4, false)
	k.grid("train.blend_knn", t.BlendKNN, 0, 1, true)
	k.grid("train.blend_popularity", t.BlendPopularity, 0, 1, true)
	if len(t.BlendKNN) > 0 && len(t.BlendPopularity) > 0 && t.BlendKNN[0]+t.BlendPopularity[0] >= 1 {
		bad("train: blend_knn[0] + blend_popularity[0] must be < 1")
	}
	k.grid("train.knn_history_half_life_days", t.KNNHistoryHalfLifeDays, 0, maxDays, false)
	k.grid("train.knn_history_half_life_events", t.KNNHistoryHalfLifeEvents, 0, 1e6, false)
	if len(t.ItemSimilarity) == 0 || len(t.ItemSimilarity) > maxGrid {
		bad("train.item_similarity: need 1..%d of cosine, rp3beta, ease", maxGrid)
	}
	for _, s := range t.ItemSimilarity {
		if s != "cosine" && s != "rp3beta" && s != "ease" {
			bad("train.item_similarity %q: want cosine, rp3beta or ease", s)
		}
	}
	k.grid("train.rp3beta_beta", t.RP3Beta, 0, 2, false)
	k.grid("train.ease_lambda", t.EASELambda, 1e-6, 1e6, false)
	k.count("train.ease_max_items", t.EASEMaxItems, 0, 100000)
	if q := c.Sequence; q.Enabled {
		k.count("sequence.dim", q.Dim, 1, maxDim)
		k.count("sequence.heads", q.Heads, 1, 16)
		if q.Heads > 0 && q.Dim%q.Heads != 0 {
			bad("sequence.dim %d must be a multiple of sequence.heads %d", q.Dim, q.Heads)
		}
		k.count("sequence.max_len", q.MaxLen, 2, 1000)
		k.count("sequence.blocks", q.Blocks, 1, 8)
		k.count("sequence.epochs", q.Epochs, 1, maxEpochs)
		k.count("sequence.batch_size", q.BatchSize, 1, 4096)
		k.count("sequence.patience", q.Patience, 0, maxEpochs)
		k.count("sequence.negatives", q.Negatives, 0, 4096)
		k.count("sequence.epoch_sequences", q.EpochSequences, 0, math.MaxInt32)
		k.num("sequence.learning_rate", q.LearningRate, 0, 1, true)
		if math.IsNaN(q.Dropout) || !(q.Dropout >= 0 && q.Dropout < 1) {
			bad("sequence.dropout %g: want 0 <= p < 1", q.Dropout)
		}
		k.grid("sequence.blend", q.Blend, 0, 1, true) // the rest of the hybrid keeps 1 − w
	}
	b := c.Baselines
	if w := b.ItemKNNWeighting; w != "log1p" && w != "binary" {
		bad("baselines.itemknn_weighting %q: want log1p or binary", w)
	}
	if len(b.ItemKNNNeighbors) == 0 || len(b.ItemKNNNeighbors) > maxGrid {
		bad("baselines.itemknn_neighbors: need 1..%d values", maxGrid)
	}
	for _, n := range b.ItemKNNNeighbors {
		k.count("baselines.itemknn_neighbors", n, 1, maxNeighbors)
	}
	k.num("baselines.popularity_half_life_days", b.PopularityHalfLifeDays, 0, maxDays, false)
	if len(c.Eval.Ks) == 0 || len(c.Eval.Ks) > maxGrid {
		bad("eval.ks: need 1..%d cut-offs", maxGrid)
	}
	for _, kk := range c.Eval.Ks {
		k.count("eval.ks", kk, 1, maxK)
	}
	for _, name := range c.Eval.Targets {
		if name != "any" && !names[name] {
			bad("eval.targets: %q is neither \"any\" nor an event type (%s)", name, typeNames(e.EventTypes))
		}
	}
	if len(c.Eval.Targets) == 0 || c.TargetTypes() != nil && !slices.Contains(c.TargetTypes(), true) {
		bad("eval.targets: need \"any\" or at least one event type")
	}
	k.count("eval.min_users", c.Eval.MinUsers, 1, 1_000_000)
	for _, name := range c.Score.Exclude {
		if name != "seen" && name != "none" && !names[name] {
			bad("score.exclude: %q is neither \"seen\", \"none\" nor an event type (%s)", name, typeNames(e.EventTypes))
		}
	}
	if c.Score.ExcludePurchased != nil && !slices.Equal(c.Score.Exclude, Default().Score.Exclude) {
		bad("score: set exclude or the older exclude_purchased, not both")
	}
	if _, _, err := ParseMetric(c.Gate.Metric); err != nil {
		bad("gate.metric: %v", err)
	}
	if math.IsNaN(c.Gate.Tolerance) || c.Gate.Tolerance < 0 || c.Gate.Tolerance >= 1 {
		bad("gate.tolerance %g: must be in [0, 1)", c.Gate.Tolerance)
	}
	s := c.Score
	if s.K <= 0 || s.Candidates < s.K || s.Shards <= 0 {
		bad("score: need k > 0, candidates >= k, shards > 0")
	}
	k.count("score.k", s.K, 1, maxK)
	k.count("score.candidates", s.Candidates, 1, maxCandidates)
	k.count("score.shards", s.Shards, 1, maxShards)
	if !slices.Contains([]string{"auto", "exact", "ivf"}, s.Index) {
		bad("score.index %q: want auto, exact or ivf", s.Index)
	}
	k.count("score.index_min_items", s.IndexMinItems, 0, math.MaxInt32)
	if !(s.MinRetrievalRecall > 0 && s.MinRetrievalRecall <= 1) {
		bad("score.min_retrieval_recall %g: must be in (0, 1]", s.MinRetrievalRecall)
	}
	if pc := c.Purchase; pc.Enabled {
		if pc.HorizonDays < 0 || pc.Cutoffs == 1 || pc.Cutoffs < 0 || pc.Epochs <= 0 || pc.BatchSize <= 0 || !(pc.LearningRate > 0) || pc.TopItems <= 0 {
			bad("purchase: need epochs, batch_size, learning_rate, top_items > 0, horizon_days >= 0 and cutoffs 0 or >= 2 (0 = chosen from the data)")
		}
		k.count("purchase.horizon_days", pc.HorizonDays, 0, 365)
		k.count("purchase.cutoffs", pc.Cutoffs, 0, 200)
		k.count("purchase.epochs", pc.Epochs, 1, maxEpochs)
		k.count("purchase.batch_size", pc.BatchSize, 1, maxBatch)
		k.count("purchase.patience", pc.Patience, 0, maxEpochs)
		k.count("purchase.top_items", pc.TopItems, 1, maxK)
		k.num("purchase.learning_rate", pc.LearningRate, 0, 1, true)
		if len(pc.Hidden) > maxLayers {
			bad("purchase.hidden: at most %d layers, have %d", maxLayers, len(pc.Hidden))
		}
		for i, h := range pc.Hidden {
			k.count(fmt.Sprintf("purchase.hidden[%d]", i), h, 1, maxHidden)
		}
		if pc.Cutoffs > 0 && pc.HorizonDays > 0 && (pc.Cutoffs+1)*pc.HorizonDays >= e.LookbackDays {
			bad("purchase: (cutoffs+1)·horizon_days = %d days must fit in events.lookback_days (%d)", (pc.Cutoffs+1)*pc.HorizonDays, e.LookbackDays)
		}
		if math.IsNaN(pc.Tolerance) || math.IsNaN(pc.L2) || pc.Tolerance < 0 || pc.L2 < 0 {
			bad("purchase: tolerance and l2 must be >= 0")
		}
		k.num("purchase.tolerance", pc.Tolerance, 0, 10, false)
		k.num("purchase.l2", pc.L2, 0, 1, false)
		if len(pc.WindowsDays) == 0 {
			bad("purchase.windows_days: need at least one window")
		}
		for i, w := range pc.WindowsDays {
			if w <= 0 || w > maxDays || slices.Contains(pc.WindowsDays[:i], w) {
				bad("purchase.windows_days: %d must be in 1..%d and not repeated", w, maxDays)
			}
		}
		if len(pc.ItemBlend) == 0 || len(pc.ItemBlend) > maxGrid {
			bad("purchase.item_blend: need 1..%d weights", maxGrid)
		}
		for _, w := range pc.ItemBlend {
			if math.IsNaN(w) || w < 0 || w > 1 {
				bad("purchase.item_blend: %g must be in [0, 1]", w)
			}
		}
	}
	return errors.Join(k.errs...)
}

func typeNames(ts []EventTypeConfig) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return strings.Join(out, ", ")
}

// ParseMetric splits "ndcg@10" into its name and cut-off.
func ParseMetric(s string) (string, int, error) {
	name, k, ok := strings.Cut(strings.ToLower(s), "@")
	if !ok {
		return "", 0, fmt.Errorf("%q: want name@k, e.g. ndcg@10", s)
	}
	switch name {
	case "ndcg", "recall", "hr", "map":
	default:
		return "", 0, fmt.Errorf("%q: metric must be ndcg, recall, hr or map", s)
	}
	var n int
	if _, err := fmt.Sscanf(k, "%d", &n); err != nil || n <= 0 || n > maxK {
		return "", 0, fmt.Errorf("%q: bad cut-off", s)
	}
	return name, n, nil
}
