package jobs

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/shelfml/shelf/internal/sysres"
)

// StageTiming is one stage's wall and CPU time, and the process's memory
// when it ended.
type StageTiming struct {
	Stage      string  `json:"stage"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSMiB is the process's peak resident memory so far (Linux
	// VmHWM): the first stage that reaches the run's peak is the one that
	// set it. HeapLiveMiB is the Go heap the last GC found live.
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	HeapLiveMiB float64 `json:"heap_live_mib,omitempty"`
}

type stageClock struct {
	log   *slog.Logger
	times []StageTiming
	// heapDir, from SHELF_HEAP_PROFILE, receives a Go heap profile at the
	// end of every stage (heap-NN-<stage>.pprof; go tool pprof
	// -sample_index=inuse_space), taken after a collection.
	heapDir string
}

func newStageClock(log *slog.Logger) *stageClock {
	return &stageClock{log: log, heapDir: os.Getenv("SHELF_HEAP_PROFILE")}
}

// heapLiveMiB is the heap the last GC marked live.
func heapLiveMiB() float64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64()) / (1 << 20)
}

// profile writes the heap profile of the stage that just ended.
func (c *stageClock) profile(stage string) {
	if c.heapDir == "" {
		return
	}
	path := filepath.Join(c.heapDir, fmt.Sprintf("heap-%02d-%s.pprof", len(c.times), stage))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.WriteHeapProfile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.log.Warn("could not write the heap profile", "path", path, "err", err)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// begin logs a stage start and returns the function that ends it.
func (c *stageClock) begin(stage string) func(attrs ...slog.Attr) {
	t0, c0 := time.Now(), cpuSeconds()
	c.log.Info("stage start", "stage", stage)
	return func(attrs ...slog.Attr) {
		secs, cpu := time.Since(t0).Seconds(), cpuSeconds()-c0
		if c.heapDir != "" {
			// Profiling: collections now, so that the profile and
			// heap_live_mib show what the stage leaves live, not what the
			// last collection within it found (the second empties what
			// sync.Pools kept through the first).
			runtime.GC()
			runtime.GC()
		}
		st := StageTiming{Stage: stage, Seconds: secs, CPUSeconds: cpu,
			PeakRSSMiB: round3(sysres.PeakRSSMiB()), HeapLiveMiB: round3(heapLiveMiB())}
		c.times = append(c.times, st)
		c.profile(stage)
		args := []any{"stage", stage, "seconds", round3(st.Seconds), "cpu_seconds", round3(st.CPUSeconds),
			"peak_rss_mib", round3(st.PeakRSSMiB), "heap_live_mib", round3(st.HeapLiveMiB)}
		for _, a := range attrs {
			args = append(args, a)
		}
		c.log.Info("stage done", args...)
	}
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
