package configs

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shelfml/shelf/internal/fuzzcorpus"
)

func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 2 {
		t.Fatalf("expected example configs, found %v", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Events.URL, cfg.Output.URL, cfg.Date = "mem://", "mem://", "2011-01-01"
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadIsStrict(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown top", "nmae: x\n", `unknown key "nmae" — did you mean "name"?`},
		{"unknown nested", "train:\n  epoch: 3\n", `unknown key "train.epoch" — did you mean "train.epochs"?`},
		{"wrong type", "train:\n  epochs: many\n", "the setting wants a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c.yaml")
			os.WriteFile(p, []byte(tc.yaml), 0o644)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want it to name %s and contain %q", err, p, tc.want)
			}
		})
	}
	p := filepath.Join(dir, "empty.yaml")
	os.WriteFile(p, nil, 0o644)
	cfg, err := Load(p)
	if err != nil || cfg.Train.Epochs != Default().Train.Epochs {
		t.Fatalf("empty file: %v", err)
	}
}

func TestPrecedence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("train:\n  epochs: 7\n  dim: 8\n"), 0o644)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Epochs != 7 || cfg.Train.BatchSize != Default().Train.BatchSize {
		t.Fatalf("file over defaults: %+v", cfg.Train)
	}
	err = cfg.ApplyEnv([]string{"SHELF_TRAIN_EPOCHS=9", "SHELF_EVAL_KS=5,50", "SHELF_SCORE_EXCLUDE_PURCHASED=false", "HOME=/x",
		"SHELF_PURCHASE_WINDOWS_DAYS=3,14"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Purchase.WindowsDays, IntList{3, 14}) {
		t.Fatalf("SHELF_PURCHASE_WINDOWS_DAYS: %v", cfg.Purchase.WindowsDays)
	}
	if cfg.Train.Epochs != 9 || cfg.Train.Dim != 8 || len(cfg.Eval.Ks) != 2 || cfg.Eval.Ks[1] != 50 || cfg.Score.ExcludePurchased == nil || *cfg.Score.ExcludePurchased {
		t.Fatalf("env over file: %+v %+v", cfg.Train, cfg.Eval)
	}
	if err := cfg.ApplyEnv([]string{"SHELF_TRAIN_EPOHCS=1", "SHELF_TRAIN_DIM=x"}); err == nil ||
		!strings.Contains(err.Error(), "SHELF_TRAIN_EPOHCS: unknown") || !strings.Contains(err.Error(), "SHELF_TRAIN_DIM") {
		t.Fatalf("bad env: %v", err)
	}
	if err := cfg.ApplyEnv([]string{"SHELF_TRIAN_EPOCHS=1"}); err == nil || !strings.Contains(err.Error(), "did you mean SHELF_TRAIN_EPOCHS") {
		t.Fatalf("a misspelt section: %v", err)
	}
	// Other tools' SHELF_* variables (the test harness's, CI's) are not settings to reject.
	if err := cfg.ApplyEnv([]string{"SHELF_TEST_MINIO=http://127.0.0.1:9000", "SHELF_TEST_MINIO_USER=u", "SHELF_CI_CACHE=/tmp/c", "SHELF_TEST_AZURITE_STARTED=1"}); err != nil {
		t.Fatalf("non-config variables rejected: %v", err)
	}
	names := strings.Join(EnvNames(), " ")
	for _, want := range []string{"SHELF_EVENTS_URL", "SHELF_OUTPUT_URL", "SHELF_DATE", "SHELF_TRAIN_LEARNING_RATE"} {
		if !strings.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	cfg := Default()
	cfg.Train.Loss = "hinge"
	cfg.Score.K = 0
	cfg.Events.Filters = []FilterConfig{{Name: "q", Column: "Quantity", Op: ">", Value: "abc"}}
	cfg.Purchase.WindowsDays = IntList{7, 0, 7}
	cfg.Purchase.ItemBlend = []float64{0.5, 1.5}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"events.url", "output.url", "train.loss", "score:", "filters[0] q",
		"purchase.windows_days: 0", "purchase.windows_days: 7", "purchase.item_blend: 1.5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []string{"online-retail.yaml", "online-retail-ii.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("train: {epochs: -1}\n"))
	fuzzcorpus.Add(f, "../testdata/fuzz")
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := Default()
		if err := Decode(b, &cfg); err != nil {
			return
		}
		_ = cfg.Validate() // must not panic whatever decoded
		_, _, _ = cfg.AsOf()
	})
}

func TestCatalogAndLimits(t *testing.T) {
	valid := func() Config {
		c := Default()
		c.Events.URL, c.Output.URL = "mem://", "mem://"
		return c
	}
	if c := valid(); c.Catalog.Enabled() || c.Validate() != nil {
		t.Fatalf("default: catalog enabled %v, %v", c.Catalog.Enabled(), c.Validate())
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // "" = valid
	}{
		{"catalog file", func(c *Config) { c.Catalog.Path = "catalog/items.parquet" }, ""},
		{"catalog prefix own url", func(c *Config) { c.Catalog.Path, c.Catalog.URL = "items", "s3://cat" }, ""},
		{"catalog url without path", func(c *Config) { c.Catalog.URL = "s3://cat" }, "catalog.url is set but catalog.path is empty"},
		{"catalog without item column", func(c *Config) { c.Catalog.Path, c.Catalog.Columns.Item = "c.parquet", "" }, "catalog.columns.item_id"},
		{"catalog absolute", func(c *Config) { c.Catalog.Path = "/etc/c.parquet" }, "catalog.path"},
		{"catalog dotdot", func(c *Config) { c.Catalog.Path = "a/../../c" }, "catalog.path"},
		{"zero limit", func(c *Config) { c.Events.Limits.MaxValueBytes = 0 }, "events.limits: max_rows_per_file"},
		{"ratio below 1", func(c *Config) { c.Events.Limits.MaxCompressionRatio = 0.5 }, "events.limits.max_compression_ratio 0.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}

	c := valid()
	err := c.ApplyEnv([]string{"SHELF_CATALOG_PATH=catalog/", "SHELF_CATALOG_COLUMNS_PRICE=unit_price",
		"SHELF_EVENTS_LIMITS_MAX_VALUE_BYTES=65536", "SHELF_EVENTS_LIMITS_MAX_COMPRESSION_RATIO=50"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Catalog.Path != "catalog/" || c.Catalog.Columns.Price != "unit_price" || c.Catalog.Columns.Item != "item_id" ||
		c.Events.Limits.MaxValueBytes != 65536 || c.Events.Limits.MaxCompressionRatio != 50 {
		t.Fatalf("env: %+v %+v", c.Catalog, c.Events.Limits)
	}
	for _, tc := range []struct{ path, url, want string }{
		{"", "", ""},
		{"catalog/items.parquet", "", "catalog/items.parquet"},
		{"catalog", "", "catalog/"},
		{"catalog/", "mem://", "catalog/"}, // same URL as the events
		{"catalog", "s3://elsewhere", ""},
	} {
		c := valid()
		c.Catalog.Path, c.Catalog.URL = tc.path, tc.url
		if got := c.CatalogInEvents(); got != tc.want {
			t.Errorf("CatalogInEvents(path %q, url %q) = %q, want %q", tc.path, tc.url, got, tc.want)
		}
	}

	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("catalog:\n  path: items.parquet\n  columns: {category: cat}\nevents:\n  limits: {max_rows_per_file: 10}\n"), 0o644)
	if c, err = Load(p); err != nil {
		t.Fatal(err)
	}
	if c.Catalog.Path != "items.parquet" || c.Catalog.Columns.Category != "cat" || c.Catalog.Columns.Item != "item_id" ||
		c.Events.Limits.MaxRowsPerFile != 10 || c.Events.Limits.MaxValueBytes != DefaultLimits().MaxValueBytes {
		t.Fatalf("file: %+v %+v", c.Catalog, c.Events.Limits)
	}
}

// TestValidateRejectsAbsurdValues: the values an independent run of
// absurd configs found accepted, every one refused at once with the setting
// named — never an out-of-memory crash or a NaN deep in training.
func TestValidateRejectsAbsurdValues(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"NaN learning rate", func(c *Config) { c.Train.LearningRate = nan }, "train.learning_rate"},
		{"+Inf learning rate", func(c *Config) { c.Train.LearningRate = inf }, "train.learning_rate"},
		{"NaN L2", func(c *Config) { c.Train.L2 = nan }, "train.l2"},
		{"NaN half-life", func(c *Config) { c.Train.HalfLifeDays = nan }, "train.half_life_days"},
		{"NaN history half-life", func(c *Config) { c.Train.KNNHistoryHalfLifeDays = []float64{nan} }, "train.knn_history_half_life_days"},
		{"NaN gate tolerance", func(c *Config) { c.Gate.Tolerance = nan }, "gate.tolerance"},
		{"NaN blend weight", func(c *Config) { c.Train.BlendKNN = []float64{0, nan} }, "train.blend_knn"},
		{"NaN purchase learning rate", func(c *Config) { c.Purchase.LearningRate = nan }, "purchase"},
		{"batch of 2e9", func(c *Config) { c.Train.BatchSize = 2e9 }, "train.batch_size"},
		{"layer of 1e8", func(c *Config) { c.Train.Hidden = []int{1e8} }, "train.hidden[0]"},
		{"k of 1e8", func(c *Config) { c.Score.K, c.Score.Candidates = 1e8, 1e8 }, "score.k"},
		{"2e9 neighbours", func(c *Config) { c.Baselines.ItemKNNNeighbors = IntList{2e9} }, "baselines.itemknn_neighbors"},
		{"1e9 negatives", func(c *Config) { c.Train.Negatives = 1e9 }, "train.negatives"},
		{"1e5 shards", func(c *Config) { c.Score.Shards = 1e5 }, "score.shards"},
		{"negative ingest shards", func(c *Config) { c.Events.IngestShards = -1 }, "events.ingest_shards"},
		{"1000 workers... fine, 1e6 not", func(c *Config) { c.Train.Workers = 1e6 }, "train.workers"},
		{"lease that overflows a Duration", func(c *Config) { c.LockLeaseSeconds = 1e12 }, "lock_lease_seconds"},
		{"name ..", func(c *Config) { c.Name = ".." }, "name"},
		{"name with a slash", func(c *Config) { c.Name = "a/b" }, "name"},
		{"negative popularity half-life", func(c *Config) { c.Baselines.PopularityHalfLifeDays = -1 }, "baselines.popularity_half_life_days"},
		{"NaN event weight", func(c *Config) { c.Events.EventTypes[0].Weight = float32(nan) }, "events.event_types[0]"},
		{"NaN reject ratio", func(c *Config) { c.Events.MaxRejectRatio = nan }, "events.max_reject_ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Events.URL, c.Output.URL = "mem://", "mem://"
			c.Train.Workers = 1000 // allowed: the goroutines only schedule
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
	c := Default()
	c.Events.URL, c.Output.URL = "mem://", "mem://"
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

// Config errors speak the config's language: the key's full path, the
// nearest known key, what the value should be.
func TestConfigErrorsSuggest(t *testing.T) {
	var cfg Config
	err := Decode([]byte("events:\n  lookback_day: 3\ntrain:\n  epochs: many\n"), &cfg)
	for _, want := range []string{`line 2: unknown key "events.lookback_day" — did you mean "events.lookback_days"?`, `line 4: "many" is a string, the setting wants a whole number`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "configs.") {
		t.Errorf("Go type names in %v", err)
	}
	err = Decode([]byte("zzz_totally_else: 1\n"), &cfg)
	if err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("no near key, yet: %v", err)
	}
	c := Default()
	err = c.ApplyEnv([]string{"SHELF_TRAIN_EPOCH=3"})
	if err == nil || !strings.Contains(err.Error(), "did you mean SHELF_TRAIN_EPOCHS?") {
		t.Errorf("env: %v", err)
	}
}
