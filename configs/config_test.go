package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"unknown top", "nmae: x\n", "field nmae not found"},
		{"unknown nested", "train:\n  epoch: 3\n", "field epoch not found"},
		{"wrong type", "train:\n  epochs: many\n", "cannot unmarshal"},
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
	err = cfg.ApplyEnv([]string{"SHELF_TRAIN_EPOCHS=9", "SHELF_EVAL_KS=5,50", "SHELF_SCORE_EXCLUDE_PURCHASED=false", "HOME=/x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Train.Epochs != 9 || cfg.Train.Dim != 8 || len(cfg.Eval.Ks) != 2 || cfg.Eval.Ks[1] != 50 || cfg.Score.ExcludePurchased {
		t.Fatalf("env over file: %+v %+v", cfg.Train, cfg.Eval)
	}
	if err := cfg.ApplyEnv([]string{"SHELF_TRAIN_EPOHCS=1", "SHELF_TRAIN_DIM=x"}); err == nil ||
		!strings.Contains(err.Error(), "SHELF_TRAIN_EPOHCS: unknown") || !strings.Contains(err.Error(), "SHELF_TRAIN_DIM") {
		t.Fatalf("bad env: %v", err)
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
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"events.url", "output.url", "train.loss", "score:", "filters[0] q"} {
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
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := Default()
		if err := Decode(b, &cfg); err != nil {
			return
		}
		_ = cfg.Validate() // must not panic whatever decoded
		_, _, _ = cfg.AsOf()
	})
}
