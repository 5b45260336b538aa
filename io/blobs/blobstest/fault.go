package blobstest

import (
	"errors"
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
	Seed         uint64
	FailRate     float64       // answer 503 SlowDown/ServiceUnavailable without forwarding
	ResetRate    float64       // close the connection (TCP RST) without answering
	TruncateRate float64       // forward, but cut a GET's body in half and drop the connection (Content-Length kept)
	DelayRate    float64       // forward after Delay
	Delay        time.Duration // default 50ms
}

// FaultStats counts what the proxy did.
type FaultStats struct {
	Requests  atomic.Int64
	Failed    atomic.Int64
	Resets    atomic.Int64
	Truncated atomic.Int64
	Delayed   atomic.Int64
}

// Faults is the total of injected faults (delays excluded).
func (s *FaultStats) Faults() int64 {
	return s.Failed.Load() + s.Resets.Load() + s.Truncated.Load()
}

type fault int

const (
	faultNone fault = iota
	faultFail
	faultReset
	faultTruncate
	faultDelay
)

// FaultProxy is an http.Handler that forwards to a target server and spoils
// requests per FaultConfig.
type FaultProxy struct {
	cfg   FaultConfig
	proxy *httputil.ReverseProxy
	Stats *FaultStats

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
	}{{f.cfg.FailRate, faultFail}, {f.cfg.ResetRate, faultReset}, {f.cfg.TruncateRate, faultTruncate}, {f.cfg.DelayRate, faultDelay}} {
		if x < c.rate {
			return c.kind
		}
		x -= c.rate
	}
	return faultNone
}

// ServeHTTP implements http.Handler.
func (f *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Stats.Requests.Add(1)
	switch f.draw() {
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
		t := time.NewTimer(f.cfg.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	f.proxy.ServeHTTP(w, r)
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
