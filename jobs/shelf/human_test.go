package main

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/events"
	"github.com/shelfml/shelf/io/tables"
	"github.com/shelfml/shelf/jobs"
)

// Text logs (the default at a terminal) show maps and structs as JSON and
// floats briefly, never Go's map[...] syntax; JSON stays JSON.
func TestReadableTextLogs(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(nil, &b, true)
	log.Info("stage done", "validation", map[string]float64{"itemknn:neighbors=10": 0.0931234567}, "seconds", 12.3456789, "err", errors.New("boom"))
	got := b.String()
	for _, want := range []string{`msg="stage done"`, `validation="{\"itemknn:neighbors=10\":0.0931234567}"`, "seconds=12.35", "err=boom"} {
		if !strings.Contains(got, want) {
			t.Errorf("text log %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "map[") {
		t.Errorf("Go map syntax in %q", got)
	}
	b.Reset()
	newLogger(nil, &b, false).Info("x", "k", 1)
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("not a terminal: want JSON lines, got %q", b.String())
	}
	b.Reset()
	newLogger([]string{"SHELF_LOG_FORMAT=json"}, &b, true).Info("x")
	if !strings.HasPrefix(b.String(), "{") {
		t.Errorf("SHELF_LOG_FORMAT=json at a terminal: %q", b.String())
	}
	b.Reset()
	newLogger([]string{"SHELF_LOG_LEVEL=warn"}, &b, true).Info("hidden")
	if b.Len() != 0 {
		t.Errorf("warn level printed info: %q", b.String())
	}
}

func TestGlobalFlags(t *testing.T) {
	args, quiet := cutFlag([]string{"run", "--date", "2024-01-01", "--quiet"}, "quiet")
	if !quiet || !reflect.DeepEqual(args, []string{"run", "--date", "2024-01-01"}) {
		t.Errorf("--quiet: %v %v", args, quiet)
	}
	args, js := cutOutputJSON([]string{"train", "--output", "json", "--date", "d"})
	if !js || !reflect.DeepEqual(args, []string{"train", "--date", "d"}) {
		t.Errorf("--output json: %v %v", args, js)
	}
	if _, js := cutOutputJSON([]string{"train", "--output-url", "json"}); js {
		t.Error("--output-url taken for --output")
	}
}

func TestSummary(t *testing.T) {
	var b bytes.Buffer
	printSummary(&b, "run", &jobs.Result{Date: "2011-03-31", Version: "2011-03-31-abc", TableSource: "popularity",
		VersionURI: "file:///tmp/out/models/x/2011-03-31-abc/", Gate: tables.GateResult{Metric: "ndcg@10", Reason: "model lost"},
		Accounting: &events.Accounting{Read: 10, Used: 7, Rejected: map[string]int64{"null_user": 2}, Duplicate: 1}})
	got := b.String()
	for _, want := range []string{"published the popularity baseline's table", "model lost", "10 read: 7 used, 2 rejected", "/tmp/out/models/x/2011-03-31-abc/report.html"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
}

// Every command's -h says what it does, how to call it and an example, and
// lists only the flags that apply to it.
func TestCommandHelp(t *testing.T) {
	for name, h := range commands {
		fs := newFlags(name, &common{})
		var b bytes.Buffer
		fs.SetOutput(&b)
		fs.Usage()
		got := b.String()
		if !strings.Contains(got, h.summary) || !strings.Contains(got, "Usage:") || !strings.Contains(got, "Example:") {
			t.Errorf("%s -h: %q", name, got)
		}
	}
	for cmd, absent := range map[string][]string{"inspect": {"-events-url", "-force", "-shard"}, "backfill": {"-date"}, "demo": {"-config", "-date"}} {
		var c common
		fs := newFlags(cmd, &c)
		for _, f := range absent {
			if fs.Lookup(strings.TrimPrefix(f, "-")) != nil {
				t.Errorf("%s has %s", cmd, f)
			}
		}
	}
}

func TestTextLogLevel(t *testing.T) {
	var b bytes.Buffer
	newLogger(nil, &b, true).Warn("careful")
	if !strings.Contains(b.String(), "level=WARN msg=careful") {
		t.Errorf("text log %q", b.String())
	}
}
