package configs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Validate returns every problem of the config at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Name == "" || strings.ContainsAny(c.Name, "/\\ ") {
		bad("name %q: must be non-empty without slashes or spaces", c.Name)
	}
	if c.Date != "" {
		if _, err := time.Parse("2006-01-02", c.Date); err != nil {
			bad("date %q: want YYYY-MM-DD", c.Date)
		}
	}
	if c.LockLeaseSeconds < 1 {
		bad("lock_lease_seconds %d: must be >= 1", c.LockLeaseSeconds)
	}
	e := c.Events
	if e.URL == "" {
		bad("events.url: required (flag --events-url or SHELF_EVENTS_URL)")
	}
	if c.Output.URL == "" {
		bad("output.url: required (flag --output-url or SHELF_OUTPUT_URL)")
	}
	if e.LookbackDays <= 0 {
		bad("events.lookback_days %d: must be > 0", e.LookbackDays)
	}
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
		if t.Weight <= 0 {
			bad("events.event_types[%d] %s: weight must be > 0", i, t.Name)
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
				if _, err := parseFloat(f.Value); err != nil {
					bad("events.filters[%d] %s: op %s needs a number, got %q", i, f.Name, f.Op, f.Value)
				}
			}
		case "not_null":
		default:
			bad("events.filters[%d] %s: op %q: want > >= < <= == != not_null prefix not_prefix", i, f.Name, f.Op)
		}
	}
	if e.MaxRejectRatio < 0 || e.MaxRejectRatio > 1 {
		bad("events.max_reject_ratio %g: must be in [0, 1]", e.MaxRejectRatio)
	}
	if l := e.Limits; l.MaxRowsPerFile <= 0 || l.MaxRowGroupBytes <= 0 || l.MaxColumnChunkBytes <= 0 || l.MaxValueBytes <= 0 {
		bad("events.limits: max_rows_per_file, max_row_group_bytes, max_column_chunk_bytes and max_value_bytes must be > 0")
	}
	if r := e.Limits.MaxCompressionRatio; !(r >= 1) { // NaN too
		bad("events.limits.max_compression_ratio %g: must be >= 1", r)
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
	if c.Split.TestDays <= 0 || c.Split.ValidationDays <= 0 {
		bad("split: test_days and validation_days must be > 0")
	}
	if c.Split.TestDays+c.Split.ValidationDays >= e.LookbackDays {
		bad("split: test_days + validation_days (%d) must be < events.lookback_days (%d)", c.Split.TestDays+c.Split.ValidationDays, e.LookbackDays)
	}
	t := c.Train
	if t.Dim <= 0 || t.Dim > 1024 {
		bad("train.dim %d: must be in 1..1024", t.Dim)
	}
	for i, h := range t.Hidden {
		if h <= 0 {
			bad("train.hidden[%d] %d: must be > 0", i, h)
		}
	}
	if t.Epochs <= 0 || t.BatchSize <= 0 || t.Negatives <= 0 || t.BatchShards <= 0 {
		bad("train: epochs, batch_size, negatives and batch_shards must be > 0")
	}
	if t.Workers < 0 || c.Score.Workers < 0 {
		bad("train.workers and score.workers: must be >= 0 (0 = the CPUs this process may use)")
	}
	if t.LearningRate <= 0 {
		bad("train.learning_rate %g: must be > 0", t.LearningRate)
	}
	if t.NegSampling != "uniform" && t.NegSampling != "popularity" {
		bad("train.neg_sampling %q: want uniform or popularity", t.NegSampling)
	}
	if t.Loss != "bce" && t.Loss != "bpr" {
		bad("train.loss %q: want bce or bpr", t.Loss)
	}
	if t.EpochPositives < 0 {
		bad("train.epoch_positives %d: want >= 0 (0 = all)", t.EpochPositives)
	}
	if !(t.Dropout >= 0 && t.Dropout < 1) {
		bad("train.dropout %g: want 0 <= p < 1", t.Dropout)
	}
	if t.L2 < 0 || t.HalfLifeDays < 0 || t.NegAlpha < 0 {
		bad("train: l2, half_life_days and neg_alpha must be >= 0")
	}
	if len(t.BlendKNN) == 0 || len(t.BlendPopularity) == 0 {
		bad("train.blend_knn and train.blend_popularity: need at least one value each ([0] = model only)")
	}
	for _, b := range append(append([]float64(nil), t.BlendKNN...), t.BlendPopularity...) {
		if b < 0 || b >= 1 {
			bad("train.blend_knn / blend_popularity: %g must be in [0, 1)", b)
		}
	}
	if len(t.BlendKNN) > 0 && len(t.BlendPopularity) > 0 && t.BlendKNN[0]+t.BlendPopularity[0] >= 1 {
		bad("train: blend_knn[0] + blend_popularity[0] must be < 1")
	}
	if w := c.Baselines.ItemKNNWeighting; w != "log1p" && w != "binary" {
		bad("baselines.itemknn_weighting %q: want log1p or binary", w)
	}
	if len(c.Baselines.ItemKNNNeighbors) == 0 {
		bad("baselines.itemknn_neighbors: need at least one value")
	}
	for _, n := range c.Baselines.ItemKNNNeighbors {
		if n <= 0 {
			bad("baselines.itemknn_neighbors: %d must be > 0", n)
		}
	}
	if len(t.KNNHistoryHalfLifeDays) == 0 {
		bad("train.knn_history_half_life_days: need at least one value ([0] = no decay)")
	}
	for _, h := range t.KNNHistoryHalfLifeDays {
		if h < 0 {
			bad("train.knn_history_half_life_days: %g must be >= 0", h)
		}
	}
	if len(c.Eval.Ks) == 0 {
		bad("eval.ks: need at least one cut-off")
	}
	for _, k := range c.Eval.Ks {
		if k <= 0 {
			bad("eval.ks: %d must be > 0", k)
		}
	}
	if _, _, err := ParseMetric(c.Gate.Metric); err != nil {
		bad("gate.metric: %v", err)
	}
	if c.Gate.Tolerance < 0 || c.Gate.Tolerance >= 1 {
		bad("gate.tolerance %g: must be in [0, 1)", c.Gate.Tolerance)
	}
	if c.Score.K <= 0 || c.Score.Candidates < c.Score.K || c.Score.Shards <= 0 {
		bad("score: need k > 0, candidates >= k, shards > 0")
	}
	if pc := c.Purchase; pc.Enabled {
		if pc.HorizonDays <= 0 || pc.Cutoffs < 2 || pc.Epochs <= 0 || pc.BatchSize <= 0 || pc.LearningRate <= 0 || pc.TopItems <= 0 {
			bad("purchase: need horizon_days, epochs, batch_size, learning_rate, top_items > 0 and cutoffs >= 2")
		}
		if (pc.Cutoffs+1)*pc.HorizonDays >= e.LookbackDays {
			bad("purchase: (cutoffs+1)·horizon_days = %d days must fit in events.lookback_days (%d)", (pc.Cutoffs+1)*pc.HorizonDays, e.LookbackDays)
		}
		if pc.Tolerance < 0 || pc.L2 < 0 {
			bad("purchase: tolerance and l2 must be >= 0")
		}
		if len(pc.WindowsDays) == 0 {
			bad("purchase.windows_days: need at least one window")
		}
		for i, w := range pc.WindowsDays {
			if w <= 0 || slices.Contains(pc.WindowsDays[:i], w) {
				bad("purchase.windows_days: %d must be > 0 and not repeated", w)
			}
		}
		if len(pc.ItemBlend) == 0 {
			bad("purchase.item_blend: need at least one weight")
		}
		for _, w := range pc.ItemBlend {
			if w < 0 || w > 1 {
				bad("purchase.item_blend: %g must be in [0, 1]", w)
			}
		}
	}
	return errors.Join(errs...)
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
	if _, err := fmt.Sscanf(k, "%d", &n); err != nil || n <= 0 {
		return "", 0, fmt.Errorf("%q: bad cut-off", s)
	}
	return name, n, nil
}
