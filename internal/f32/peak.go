package f32

import (
	"runtime"
	"sync"
	"time"
)

// PeakGFLOPs measures the float32 FMA throughput of threads cores running
// at once (each on its own OS thread, registers only: the compute ceiling
// the kernels are judged against, at the clock the cores actually reach
// when all of them are busy), with the widest vectors the CPU has (AVX-512
// where present) unless avx2 is set. It runs for about d; 0 where the
// assembly kernels do not run.
func PeakGFLOPs(threads int, d time.Duration, avx2 bool) float64 {
	if !HasAVX2FMA || threads <= 0 {
		return 0
	}
	const burst = 1 << 16
	var wg sync.WaitGroup
	flops := make([]float64, threads)
	start := make(chan struct{})
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-start
			for t0 := time.Now(); time.Since(t0) < d; {
				flops[t] += fmaBurst(burst, !avx2)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	sec := time.Since(t0).Seconds()
	var n float64
	for _, f := range flops {
		n += f
	}
	return n / sec / 1e9
}
