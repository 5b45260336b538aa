package blobstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultConfig says which share of requests the proxy spoils. Shares are
// drawn in order from one seeded generator, so a given Seed spoils the same
// request numbers every run (which requests those are depends on the order
// concurrent requests arrive in). At most one fault hits a request.
type FaultConfig struct {
	Seed          uint64
	FailRate      float64       // answer 503 SlowDown/ServiceUnavailable without forwarding
	ResetRate     float64       // close the connection (TCP RST) without answering
	TruncateRate  float64       // forward, but cut a GET's body in half and drop the connection (Content-Length kept)
	DelayRate     float64       // forward after Delay
	BlackholeRate float64       // read the request, then never answer (until the client gives up)
	SlowCloseRate float64       // forward the whole answer, then hold the connection Delay before ending it
	Delay         time.Duration // default 50ms
	// Latency is added to every request; BytesPerSecond (> 0) limits
	// every request and response body in both directions.
	Latency        time.Duration
	BytesPerSecond int64
}

// FaultStats counts what the proxy did.
type FaultStats struct {
	Requests    atomic.Int64
	Failed      atomic.Int64
	Resets      atomic.Int64
	Truncated   atomic.Int64
	Delayed     atomic.Int64
	Blackholed  atomic.Int64
	SlowClosed  atomic.Int64
	Throttled   atomic.Int64 // bodies sent through the bandwidth limit
	LatencyOnly atomic.Int64 // requests that got only the added latency
}

// Faults is the total of injected faults (delays and latency excluded).
func (s *FaultStats) Faults() int64 {
	return s.Failed.Load() + s.Resets.Load() + s.Truncated.Load() + s.Blackholed.Load()
}

// Touched is the count of requests anything was done to.
func (s *FaultStats) Touched() int64 {
	return s.Faults() + s.Delayed.Load() + s.SlowClosed.Load() + s.Throttled.Load() + s.LatencyOnly.Load()
}

// String summarises the counts.
func (s *FaultStats) String() string {
	return fmt.Sprintf("%d requests: %d failed (503), %d reset, %d truncated, %d blackholed, %d delayed, %d slow-closed, %d throttled",
		s.Requests.Load(), s.Failed.Load(), s.Resets.Load(), s.Truncated.Load(), s.Blackholed.Load(), s.Delayed.Load(),
		s.SlowClosed.Load(), s.Throttled.Load())
}

type fault int

const (
	faultNone fault = iota
	faultFail
	faultReset
	faultTruncate
	faultDelay
	faultBlackhole
	faultSlowClose
)

// FaultProxy is an http.Handler that forwards to a target server and spoils
// requests per FaultConfig.
type FaultProxy struct {
	cfg   FaultConfig
	proxy *httputil.ReverseProxy
	Stats *FaultStats
	off   atomic.Bool // SetEnabled(false): forward everything untouched

	mu  sync.Mutex
	rng *rand.Rand
}

// NewFaultProxy returns a proxy to target (e.g. "http://127.0.0.1:PORT").
func NewFaultProxy(target *url.URL, cfg FaultConfig) *FaultProxy {
	if cfg.Delay <= 0 {
		cfg.Delay = 50 * time.Millisecond
	}
	p := httputil.NewSingleHostReverseProxy(target)
	p.ErrorLog = log.New(io.Discard, "", 0) // cut bodies are the point, not news
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	return &FaultProxy{
		cfg:   cfg,
		proxy: p,
		Stats: &FaultStats{},
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5deece66d)),
	}
}

func (f *FaultProxy) draw() fault {
	f.mu.Lock()
	x := f.rng.Float64()
	f.mu.Unlock()
	for _, c := range []struct {
		rate float64
		kind fault
	}{{f.cfg.FailRate, faultFail}, {f.cfg.ResetRate, faultReset}, {f.cfg.TruncateRate, faultTruncate}, {f.cfg.DelayRate, faultDelay},
		{f.cfg.BlackholeRate, faultBlackhole}, {f.cfg.SlowCloseRate, faultSlowClose}} {
		if x < c.rate {
			return c.kind
		}
		x -= c.rate
	}
	return faultNone
}

// SetEnabled turns the faults on or off (the fault "removed" for a rerun).
func (f *FaultProxy) SetEnabled(on bool) { f.off.Store(!on) }

// sleep waits d or until the request is abandoned.
func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		return false
	case <-t.C:
		return true
	}
}

// ServeHTTP implements http.Handler.
func (f *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Stats.Requests.Add(1)
	if f.off.Load() {
		f.proxy.ServeHTTP(w, r)
		return
	}
	if f.cfg.Latency > 0 {
		f.Stats.LatencyOnly.Add(1)
		if !sleep(r, f.cfg.Latency) {
			return
		}
	}
	if bps := f.cfg.BytesPerSecond; bps > 0 {
		f.Stats.Throttled.Add(1)
		if r.Body != nil {
			r.Body = &throttledBody{ReadCloser: r.Body, bps: bps, start: time.Now()}
		}
		w = &throttledWriter{ResponseWriter: w, bps: bps, start: time.Now(), ctx: r}
	}
	switch f.draw() {
	case faultBlackhole:
		f.Stats.Blackholed.Add(1)
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // the client's deadline ends it
		return
	case faultSlowClose:
		f.Stats.SlowClosed.Add(1)
		f.proxy.ServeHTTP(&flushWriter{w}, r)
		sleep(r, f.cfg.Delay)
		return
	case faultFail:
		f.Stats.Failed.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected by blobstest</Message></Error>`))
		return
	case faultReset:
		f.Stats.Resets.Add(1)
		reset(w)
		return
	case faultTruncate:
		if r.Method == http.MethodGet {
			f.Stats.Truncated.Add(1)
			f.proxy.ServeHTTP(&truncatingWriter{ResponseWriter: w}, r)
			return
		}
	case faultDelay:
		f.Stats.Delayed.Add(1)
		if !sleep(r, f.cfg.Delay) {
			return
		}
	}
	f.proxy.ServeHTTP(w, r)
}

// flushWriter flushes each write, so that a slow close happens after the
// client has the whole body but before the response ends.
type flushWriter struct{ http.ResponseWriter }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// throttle sleeps so that n bytes since start take at least n/bps.
func throttle(start time.Time, n, bps int64) time.Duration {
	want := time.Duration(float64(n) / float64(bps) * float64(time.Second))
	return want - time.Since(start)
}

// throttledBody limits how fast a request body is read.
type throttledBody struct {
	io.ReadCloser
	bps   int64
	start time.Time
	n     int64
}

func (t *throttledBody) Read(p []byte) (int, error) {
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	n, err := t.ReadCloser.Read(p)
	t.n += int64(n)
	if d := throttle(t.start, t.n, t.bps); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

// throttledWriter limits how fast a response body is sent.
type throttledWriter struct {
	http.ResponseWriter
	bps   int64
	start time.Time
	n     int64
	ctx   *http.Request
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), 16<<10)]
		n, err := t.ResponseWriter.Write(chunk)
		written += n
		t.n += int64(n)
		if err != nil {
			return written, err
		}
		if fl, ok := t.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		if d := throttle(t.start, t.n, t.bps); d > 0 && !sleep(t.ctx, d) {
			return written, t.ctx.Context().Err()
		}
		p = p[n:]
	}
	return written, nil
}

func (t *throttledWriter) Flush() {
	if fl, ok := t.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

func (t *throttledWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if hj, ok := t.ResponseWriter.(http.Hijacker); ok {
		return hj.Hijack()
	}
	return nil, nil, errors.New("blobstest: not a hijacker")
}

// reset closes the client connection with RST, before any response.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// truncatingWriter passes headers (Content-Length included) and the first
// half of a successful body, then drops the connection, as a network cut
// mid-download does.
type truncatingWriter struct {
	http.ResponseWriter
	status  int
	limit   int64
	written int64
}

var errCut = errors.New("blobstest: body cut")

func (t *truncatingWriter) WriteHeader(code int) {
	t.status = code
	t.limit = -1
	if code/100 == 2 {
		var n int64
		if cl := t.Header().Get("Content-Length"); cl != "" {
			for _, c := range cl {
				n = n*10 + int64(c-'0')
			}
		}
		t.limit = n / 2
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *truncatingWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.WriteHeader(http.StatusOK)
	}
	if t.limit < 0 {
		return t.ResponseWriter.Write(p)
	}
	room := t.limit - t.written
	if int64(len(p)) <= room {
		n, err := t.ResponseWriter.Write(p)
		t.written += int64(n)
		return n, err
	}
	n, _ := t.ResponseWriter.Write(p[:room])
	t.written += int64(n)
	if fl, ok := t.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	// ReverseProxy answers a copy error under http.Server by aborting the
	// handler, which closes the connection short of Content-Length.
	return n, errCut
}

// StartFaultyS3 is StartS3 behind a FaultProxy: the returned URL's endpoint
// is the proxy. Use stats to check that faults were really injected.
//
// The AWS SDK retries 503s and connection resets itself before any caller
// sees them: gocloud's s3blob installs the SDK's standard retryer (3
// attempts, jittered backoff of up to seconds) and ignores AWS_MAX_ATTEMPTS.
// Each such fault can cost a second or two of test time, so keep FailRate
// and ResetRate near 5 %; truncated bodies are not retried by the SDK and
// are cheap.
func StartFaultyS3(t testing.TB, cfg FaultConfig) (string, *FaultStats) {
	t.Helper()
	srv := startS3Server(t)
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatalf("parse s3 server url: %v", err)
	}
	fp := NewFaultProxy(target, cfg)
	proxy := httptest.NewServer(fp)
	t.Cleanup(proxy.Close)
	return S3URL(proxy.URL, Bucket), fp.Stats
}
