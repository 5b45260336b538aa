package jobs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// DefaultProgressInterval is the least time between two progress log lines
// of one stage.
const DefaultProgressInterval = 10 * time.Second

// Progress says how long stages report how far they have got: with Terminal
// set (stderr is a TTY) each running stage is a bar redrawn under the log
// lines; otherwise a stage logs a "progress" line (done, total, rate, ETA) at
// most every Interval, plus a final one, so a pod's log stays readable. A nil
// *Progress logs lines with the defaults.
type Progress struct {
	Terminal *Terminal
	Interval time.Duration    // 0: DefaultProgressInterval
	Now      func() time.Time // nil: time.Now (tests inject a clock)
}

// Start begins a meter of total units (0 when not yet known). Its log lines
// carry log's attributes (stage, phase ...); label names its bar.
func (p *Progress) Start(log *slog.Logger, label, unit string, total int64) *Meter {
	m := &Meter{log: log, label: label, unit: unit, total: total, now: time.Now, every: DefaultProgressInterval}
	if p != nil {
		m.term = p.Terminal
		if p.Now != nil {
			m.now = p.Now
		}
		if p.Interval > 0 {
			m.every = p.Interval
		}
	}
	m.start = m.now()
	m.last = m.start
	if m.term != nil {
		m.term.add(m)
	}
	return m
}

// Close removes any bars left on the terminal (a stage that failed half-way).
func (p *Progress) Close() {
	if p != nil && p.Terminal != nil {
		p.Terminal.Close()
	}
}

// Meter is one stage's progress. Its methods are safe for concurrent use.
type Meter struct {
	log         *slog.Logger
	label, unit string
	term        *Terminal
	now         func() time.Time
	every       time.Duration
	mu          sync.Mutex
	done, total int64
	extra       []slog.Attr
	start, last time.Time // start; last log line (or start)
	finished    bool
}

// SetTotal sets the number of units once it is known.
func (m *Meter) SetTotal(n int64) {
	m.mu.Lock()
	m.total = n
	m.mu.Unlock()
}

// Set records done units; extra attributes (rows, samples, loss ...) replace
// the previous ones when given.
func (m *Meter) Set(done int64, extra ...slog.Attr) { m.update(func() { m.done = done }, extra) }

// Add records n more units done.
func (m *Meter) Add(n int64, extra ...slog.Attr) { m.update(func() { m.done += n }, extra) }

func (m *Meter) update(change func(), extra []slog.Attr) {
	if m == nil { // callers without progress (tune's trials) pass none
		return
	}
	m.mu.Lock()
	if m.finished {
		m.mu.Unlock()
		return
	}
	change()
	if len(extra) > 0 {
		m.extra = extra
	}
	now := m.now()
	if m.term != nil {
		m.mu.Unlock()
		m.term.refresh(now, false)
		return
	}
	if now.Sub(m.last) < m.every {
		m.mu.Unlock()
		return
	}
	m.last = now
	args := m.state(now).logArgs(m.unit, false)
	m.mu.Unlock()
	m.log.Info("progress", args...)
}

// Finish logs the final line, or removes the bar. Later calls do nothing,
// so `defer m.Finish()` may follow an explicit call.
func (m *Meter) Finish() {
	m.mu.Lock()
	if m.finished {
		m.mu.Unlock()
		return
	}
	m.finished = true
	st := m.state(m.now())
	m.mu.Unlock()
	if m.term != nil {
		m.term.remove(m)
		return
	}
	m.log.Info("progress", st.logArgs(m.unit, true)...)
}

func (m *Meter) state(now time.Time) meterState {
	return meterState{done: m.done, total: m.total, elapsed: now.Sub(m.start), extra: m.extra}
}

func (m *Meter) snapshot(now time.Time) meterState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state(now)
}

// meterState is a meter at one instant.
type meterState struct {
	done, total int64
	elapsed     time.Duration
	extra       []slog.Attr
}

// rate is units per second since the start.
func (s meterState) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.done) / s.elapsed.Seconds()
}

// eta extrapolates the rate so far; ok is false while it cannot.
func (s meterState) eta() (d time.Duration, ok bool) {
	r := s.rate()
	if s.total <= 0 || r <= 0 {
		return 0, false
	}
	left := max(s.total-s.done, 0)
	return time.Duration(float64(left) / r * float64(time.Second)), true
}

// logArgs are a progress line's attributes, in a stable order.
func (s meterState) logArgs(unit string, final bool) []any {
	args := []any{"unit", unit, "done", s.done}
	if s.total > 0 {
		args = append(args, "total", s.total)
	}
	args = append(args, "rate", round3(s.rate()), "elapsed_seconds", round3(s.elapsed.Seconds()))
	if eta, ok := s.eta(); ok {
		args = append(args, "eta_seconds", round3(eta.Seconds()))
	}
	for _, a := range s.extra {
		args = append(args, a)
	}
	if final {
		args = append(args, "final", true)
	}
	return args
}

// barWidth is the number of cells between a bar's brackets.
const barWidth = 24

// bar renders one terminal line of at most width runes:
//
//	2011-03-31 score/0   [=========>              ]  41%  2048/5000 users  812.3/s  eta 4s  rows=40960
func (s meterState) bar(label, unit string, width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s [", label)
	if s.total > 0 {
		frac := min(float64(s.done)/float64(s.total), 1)
		full := int(frac * barWidth)
		b.WriteString(strings.Repeat("=", full))
		if full < barWidth {
			b.WriteByte('>')
			b.WriteString(strings.Repeat(" ", barWidth-full-1))
		}
		fmt.Fprintf(&b, "] %3d%%  %d/%d %s", int(frac*100), s.done, s.total, unit)
	} else {
		fmt.Fprintf(&b, "%s]  %d %s", strings.Repeat("?", barWidth), s.done, unit)
	}
	fmt.Fprintf(&b, "  %.1f/s", s.rate())
	if eta, ok := s.eta(); ok {
		fmt.Fprintf(&b, "  eta %s", eta.Round(time.Second))
	}
	for _, a := range s.extra {
		fmt.Fprintf(&b, "  %s=%s", a.Key, a.Value)
	}
	r := []rune(b.String())
	if width > 0 && len(r) > width {
		r = r[:width]
	}
	return string(r)
}

// redrawEvery bounds how often bars are redrawn.
const redrawEvery = 100 * time.Millisecond

// Terminal shares one TTY between log lines and progress bars: the bars stay
// on the last lines; a log line written through Terminal (as the slog
// handler's writer) erases them, is written, and the bars are drawn again
// below it.
type Terminal struct {
	mu       sync.Mutex
	w        io.Writer
	width    int
	bars     []*Meter
	drawn    int // bar lines on the screen; the cursor ends the last one
	lastDraw time.Time
}

// NewTerminal draws on w, a terminal width columns wide.
func NewTerminal(w io.Writer, width int) *Terminal {
	return &Terminal{w: w, width: width}
}

// Write writes log output above the bars.
func (t *Terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.erase()
	n, err := t.w.Write(p)
	t.draw()
	return n, err
}

// Close erases the bars and forgets them.
func (t *Terminal) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.erase()
	t.bars = nil
}

func (t *Terminal) add(m *Meter) {
	t.mu.Lock()
	t.bars = append(t.bars, m)
	t.mu.Unlock()
	t.refresh(m.start, true)
}

func (t *Terminal) remove(m *Meter) {
	t.mu.Lock()
	for i, b := range t.bars {
		if b == m {
			t.bars = append(t.bars[:i], t.bars[i+1:]...)
			break
		}
	}
	t.mu.Unlock()
	t.refresh(m.now(), true)
}

// refresh redraws the bars, at most every redrawEvery unless forced.
func (t *Terminal) refresh(now time.Time, force bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !force && now.Sub(t.lastDraw) < redrawEvery {
		return
	}
	t.lastDraw = now
	t.erase()
	t.draw()
}

// erase clears the bar lines and leaves the cursor at the start of the first.
func (t *Terminal) erase() {
	if t.drawn == 0 {
		return
	}
	io.WriteString(t.w, "\r\x1b[2K"+strings.Repeat("\x1b[1A\x1b[2K", t.drawn-1))
	t.drawn = 0
}

// draw writes one line per bar, without a final newline, so the next erase
// knows where they are. Lines are cut to the width: a wrapped line would
// break the count.
func (t *Terminal) draw() {
	if len(t.bars) == 0 {
		return
	}
	lines := make([]string, len(t.bars))
	for i, m := range t.bars {
		lines[i] = m.snapshot(m.now()).bar(m.label, m.unit, t.width-1)
	}
	io.WriteString(t.w, strings.Join(lines, "\n"))
	t.drawn = len(lines)
}

// meter starts a progress meter for one of this run's stages; attrs
// (key-value pairs such as "phase", "select") go on its log lines and bar.
func (e *env) meter(stage, unit string, total int64, attrs ...any) *Meter {
	label := e.cfg.Date + " " + stage
	for i := 1; i < len(attrs); i += 2 {
		label += fmt.Sprintf("/%v", attrs[i])
	}
	return e.r.Progress.Start(e.log.With(append([]any{"stage", stage}, attrs...)...), label, unit, total)
}

// files is an events.Options.Progress callback: files, with rows read.
func (m *Meter) files(done, total int, rows int64) {
	m.SetTotal(int64(total))
	m.Set(int64(done), slog.Int64("rows", rows))
}
