// Package sysres reads the resources this process may use: the CPUs the Go
// runtime was given (GOMAXPROCS, which since Go 1.25 follows the cgroup CPU
// quota) and the memory limit of its cgroup (v2 memory.max, v1
// memory.limit_in_bytes). Workers and memory budgets follow them, so a pod's
// resources decide its parallelism and its GOMEMLIMIT without hand-set values.
package sysres

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// CPUs is the number of CPUs the runtime schedules on: the cgroup quota
// rounded up, else the machine's (runtime.GOMAXPROCS).
func CPUs() int { return max(1, runtime.GOMAXPROCS(0)) }

// Workers resolves a configured worker count: n > 0 is kept, 0 means CPUs().
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return CPUs()
}

// root is where cgroup file systems are mounted (a variable for tests).
var root = "/sys/fs/cgroup"

// procCgroup is this process's cgroup membership file (a variable for tests).
var procCgroup = "/proc/self/cgroup"

// MemoryLimit returns the memory limit of this process's cgroup in bytes,
// or ok false when there is none (unlimited, or no cgroup file system).
func MemoryLimit() (limit int64, ok bool) {
	v2, v1 := cgroupPaths()
	for _, c := range []struct{ dir, file string }{
		{v2, "memory.max"},
		{v1, "memory.limit_in_bytes"},
	} {
		if c.dir == "" {
			continue
		}
		// A nested cgroup can be limited by an ancestor: walk up to the root.
		for dir := c.dir; ; dir = filepath.Dir(dir) {
			if n, found := readLimit(filepath.Join(dir, c.file)); found && (!ok || n < limit) {
				limit, ok = n, true
			}
			if dir == "/" || dir == "." || dir == "" {
				break
			}
		}
		if ok {
			return limit, true
		}
	}
	return 0, false
}

// cgroupPaths returns the directories of this process's v2 and v1 memory
// cgroups under root ("" when absent).
func cgroupPaths() (v2, v1 string) {
	f, err := os.Open(procCgroup)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = filepath.Join(root, parts[2])
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = filepath.Join(root, "memory", parts[2])
		}
	}
	return v2, v1
}

// readLimit parses a limit file; "max" and v1's near-2⁶³ sentinel mean none.
func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}

// MemoryLimitShare is the share of the cgroup limit given to the Go heap
// when GOMEMLIMIT is not set: the rest is for goroutine stacks, the binary,
// page cache of the emptyDir and the kernel's own accounting.
const MemoryLimitShare = 0.9

// ApplyMemoryLimit sets the Go runtime's soft memory limit to
// MemoryLimitShare of the cgroup limit unless GOMEMLIMIT is set. It returns
// the limit in effect (0 = none) and where it came from.
func ApplyMemoryLimit(getenv func(string) string) (int64, string) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	lim, ok := MemoryLimit()
	if !ok {
		return 0, "none"
	}
	soft := int64(float64(lim) * MemoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft, "cgroup"
}

// MemoryBudget is the memory this process may plan for: the Go memory limit
// when one is set, else the cgroup limit, else the machine's RAM, else
// fallback.
func MemoryBudget(fallback int64) int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < 1<<62 {
		return l
	}
	if l, ok := MemoryLimit(); ok {
		return l
	}
	if n := physicalMemory(); n > 0 {
		return n
	}
	return fallback
}

// physicalMemory reads MemTotal from /proc/meminfo (0 when unknown).
func physicalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// PeakRSSMiB is the process's peak resident memory so far (Linux VmHWM
// from /proc/self/status; 0 where that is absent).
func PeakRSSMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
