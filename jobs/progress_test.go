package jobs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is the injected clock: time moves only when the test says so.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2024, 11, 2, 3, 0, 0, 0, time.UTC)} }

// jsonLines decodes a JSON log, one object per line.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestProgressLogLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil)).With("stage", "score")
	clk := newFakeClock()
	p := &Progress{Interval: 10 * time.Second, Now: clk.now}
	m := p.Start(log, "score", "users", 100)
	steps := []struct {
		after time.Duration
		do    func()
		lines int // log lines so far
	}{
		{time.Second, func() { m.Set(10) }, 0},                               // t=1s: too soon
		{9 * time.Second, func() { m.Set(30) }, 1},                           // t=10s: a line
		{2 * time.Second, func() { m.Set(40) }, 1},                           // t=12s: 2 s after the last
		{5 * time.Second, func() { m.Add(10) }, 1},                           // t=17s: 7 s after
		{3 * time.Second, func() { m.Add(20, slog.Int64("rows", 1400)) }, 2}, // t=20s: a line
		{5 * time.Second, func() { m.Set(100) }, 2},                          // t=25s
		{0, m.Finish, 3}, // the final line, whenever
		{time.Minute, func() { m.Finish(); m.Set(120) }, 3},                               // finished: silent
		{time.Minute, func() { m.Add(1, slog.Int64("rows", 1)) }, 3},                      // still silent
		{0, func() { p.Start(log, "x", "users", 0).Finish() }, 4},                         // unknown total
		{0, func() { (*Progress)(nil).Start(log, "x", "files", 1).Add(0) }, 4},            // nil Progress: defaults
		{0, func() { var q *Progress; q.Close(); q.Start(log, "x", "f", 1).Finish() }, 5}, // and a final line
	}
	for i, s := range steps {
		clk.advance(s.after)
		s.do()
		if got := len(jsonLines(t, buf.String())); got != s.lines {
			t.Fatalf("step %d: %d log lines, want %d:\n%s", i, got, s.lines, buf.String())
		}
	}
	lines := jsonLines(t, buf.String())
	want := []map[string]any{
		{"msg": "progress", "stage": "score", "unit": "users", "done": 30.0, "total": 100.0, "rate": 3.0,
			"elapsed_seconds": 10.0, "eta_seconds": 23.333},
		{"msg": "progress", "stage": "score", "unit": "users", "done": 70.0, "total": 100.0, "rate": 3.5,
			"elapsed_seconds": 20.0, "eta_seconds": 8.571, "rows": 1400.0},
		{"msg": "progress", "stage": "score", "unit": "users", "done": 100.0, "total": 100.0, "rate": 4.0,
			"elapsed_seconds": 25.0, "eta_seconds": 0.0, "rows": 1400.0, "final": true},
		{"msg": "progress", "stage": "score", "unit": "users", "done": 0.0, "rate": 0.0, "elapsed_seconds": 0.0, "final": true},
	}
	for i, w := range want {
		got := lines[i]
		delete(got, "time")
		delete(got, "level")
		if len(got) != len(w) {
			t.Errorf("line %d: keys %v, want %v", i, got, w)
			continue
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, got[k], v)
			}
		}
	}
	if strings.Contains(buf.String(), "[=") || strings.Contains(buf.String(), "\x1b") {
		t.Errorf("log mode printed a bar or escape codes:\n%q", buf.String())
	}
}

func TestProgressSetTotalLater(t *testing.T) {
	var buf bytes.Buffer
	clk := newFakeClock()
	m := (&Progress{Now: clk.now}).Start(slog.New(slog.NewJSONHandler(&buf, nil)), "ingest", "files", 0)
	clk.advance(DefaultProgressInterval)
	m.SetTotal(8)
	m.Set(2, slog.Int64("rows", 5000))
	l := jsonLines(t, buf.String())
	if len(l) != 1 || l[0]["total"] != 8.0 || l[0]["eta_seconds"] != 30.0 || l[0]["rows"] != 5000.0 {
		t.Fatalf("got %v", l)
	}
}

func TestProgressBar(t *testing.T) {
	tests := []struct {
		name        string
		st          meterState
		width       int
		want        string
		wantLen     int
		wantContain []string
	}{
		{name: "start", st: meterState{done: 0, total: 10}, width: 200,
			want: "ingest                 [>                       ]   0%  0/10 files  0.0/s"},
		{name: "quarter", st: meterState{done: 50, total: 200, elapsed: 2 * time.Second, extra: []slog.Attr{slog.Int64("rows", 7)}}, width: 200,
			want: "ingest                 [======>                 ]  25%  50/200 files  25.0/s  eta 6s  rows=7"},
		{name: "full", st: meterState{done: 10, total: 10, elapsed: time.Second}, width: 200,
			want: "ingest                 [========================] 100%  10/10 files  10.0/s  eta 0s"},
		{name: "over", st: meterState{done: 12, total: 10, elapsed: time.Second}, width: 200,
			wantContain: []string{"[========================] 100%  12/10"}},
		{name: "unknown total", st: meterState{done: 3, elapsed: time.Second}, width: 200,
			want: "ingest                 [????????????????????????]  3 files  3.0/s"},
		{name: "cut to width", st: meterState{done: 1, total: 3, elapsed: time.Second}, width: 30, wantLen: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.st.bar("ingest", "files", tt.width)
			if tt.want != "" && got != tt.want {
				t.Errorf("bar:\n got %q\nwant %q", got, tt.want)
			}
			if tt.wantLen > 0 && len(got) != tt.wantLen {
				t.Errorf("len %d, want %d: %q", len(got), tt.wantLen, got)
			}
			for _, s := range tt.wantContain {
				if !strings.Contains(got, s) {
					t.Errorf("%q lacks %q", got, s)
				}
			}
		})
	}
}

// TestTerminalBars drives bars and log lines through a fake terminal (a
// buffer) and checks what a TTY would be sent.
func TestTerminalBars(t *testing.T) {
	var tty bytes.Buffer
	term := NewTerminal(&tty, 100)
	clk := newFakeClock()
	p := &Progress{Terminal: term, Now: clk.now}
	log := slog.New(slog.NewTextHandler(term, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	const erase1 = "\r\x1b[2K"  // clear the one bar line
	const up = "\x1b[1A\x1b[2K" // and each line above it
	var all strings.Builder
	written := func() string { s := tty.String(); all.WriteString(s); tty.Reset(); return s }

	m := p.Start(log.With("stage", "score"), "2024-11-02 score/0", "users", 200)
	if got := written(); !strings.HasPrefix(got, "2024-11-02 score/0") || !strings.Contains(got, "[>") || strings.Contains(got, "\n") {
		t.Fatalf("start draws one bar line without newline: %q", got)
	}
	clk.advance(2 * time.Second)
	m.Set(50)
	if got := written(); got != erase1+"2024-11-02 score/0     [======>                 ]  25%  50/200 users  25.0/s  eta 6s" {
		t.Fatalf("after Set(50): %q", got)
	}
	clk.advance(10 * time.Millisecond)
	m.Set(60) // within redrawEvery: nothing sent
	if got := written(); got != "" {
		t.Fatalf("redraw not rate-limited: %q", got)
	}
	log.Info("epoch", "epoch", 3)
	got := written()
	if !strings.HasPrefix(got, erase1+"level=INFO msg=epoch epoch=3\n2024-11-02 score/0") || !strings.Contains(got, " 30%  60/200") {
		t.Fatalf("a log line goes above the bar, which is redrawn: %q", got)
	}
	clk.advance(time.Second)
	m2 := p.Start(log, "backfill", "dates", 4)
	got = written()
	if !strings.HasPrefix(got, erase1) || strings.Count(got, "\n") != 1 || !strings.Contains(got, "\nbackfill") {
		t.Fatalf("a second meter adds a second line: %q", got)
	}
	clk.advance(time.Second)
	m2.Add(1)
	if got := written(); !strings.HasPrefix(got, erase1+up+"2024-11-02 score/0") {
		t.Fatalf("two bars are erased line by line: %q", got)
	}
	m.Finish()
	if got := written(); got != erase1+up+"backfill               [======>                 ]  25%  1/4 dates  1.0/s  eta 3s" {
		t.Fatalf("a finished meter's bar goes away: %q", got)
	}
	p.Close()
	if got := written(); got != erase1 {
		t.Fatalf("Close erases the remaining bar: %q", got)
	}
	m2.Finish()
	log.Info("done")
	if got := written(); got != "level=INFO msg=done\n" {
		t.Fatalf("no bars left: %q", got)
	}
	screen := strings.NewReplacer(erase1, "\n", up, "\n").Replace(all.String()) // each line as drawn
	for _, l := range strings.Split(screen, "\n") {
		if len(l) >= 100 {
			t.Errorf("line wider than the terminal: %q", l)
		}
	}
}

// TestMeterConcurrent updates one meter from several goroutines while logs
// are written (run with -race): backfill dates finish concurrently.
func TestMeterConcurrent(t *testing.T) {
	var tty bytes.Buffer
	p := &Progress{Terminal: NewTerminal(&tty, 100)}
	log := slog.New(slog.NewJSONHandler(p.Terminal, nil))
	m := p.Start(log, "backfill", "dates", 400)
	done := make(chan bool)
	for range 4 {
		go func() {
			for range 100 {
				m.Add(1, slog.Int("failed", 0))
				log.Info("backfill date done")
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
	if st := m.snapshot(time.Now()); st.done != 400 {
		t.Fatalf("done = %d, want 400", st.done)
	}
	m.Finish()
	p.Close()
}
