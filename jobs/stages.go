package jobs

import (
	"log/slog"
	"syscall"
	"time"
)

// StageTiming is one stage's wall and CPU time.
type StageTiming struct {
	Stage      string  `json:"stage"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

type stageClock struct {
	log   *slog.Logger
	times []StageTiming
}

func newStageClock(log *slog.Logger) *stageClock { return &stageClock{log: log} }

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
		st := StageTiming{Stage: stage, Seconds: time.Since(t0).Seconds(), CPUSeconds: cpuSeconds() - c0}
		c.times = append(c.times, st)
		args := []any{"stage", stage, "seconds", round3(st.Seconds), "cpu_seconds", round3(st.CPUSeconds)}
		for _, a := range attrs {
			args = append(args, a)
		}
		c.log.Info("stage done", args...)
	}
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
