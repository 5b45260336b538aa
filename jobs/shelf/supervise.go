package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/shelfml/shelf/jobs"
)

// The Go runtime exits 2 on a panic or a fatal error (out of memory,
// concurrent map writes), which is Shelf's code for "permanent: do not
// retry". So the long commands run in a child process of their own, and
// this parent tells the two apart: the child reports the code it decided on
// through a pipe before exiting, and a child that exits without reporting
// crashed. A crash exits 1 (retryable): like a kill or an OOM, a later
// attempt may pass, and the Job's backoffLimit bounds the retries.

// supervisedEnv is set in the child's environment to the pipe's descriptor.
const supervisedEnv = "SHELF_SUPERVISED_FD"

// supervised reports whether a command runs under the supervisor.
func supervised(args []string) bool {
	if os.Getenv(supervisedEnv) != "" || os.Getenv("SHELF_NO_SUPERVISOR") != "" || len(args) == 0 {
		return false
	}
	switch args[0] {
	case "run", "train", "score", "commit", "rescore", "demo", "backfill", "eval", "tune", "bench", "gen", "ingest":
		return true
	}
	return false
}

// supervise runs this binary again as a child with the same arguments,
// forwards SIGTERM/SIGINT/SIGHUP to it, and returns its exit code — 1 when
// it crashed without reporting one. The child gets SIGKILL when the parent
// dies (PR_SET_PDEATHSIG), so killing the parent never leaves it running.
func supervise(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "shelf: cannot find its own executable (%v); running unsupervised\n", err)
		return -1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "shelf: pipe: %v; running unsupervised\n", err)
		return -1
	}
	// Pdeathsig fires when the thread that started the child exits: keep
	// this goroutine on its thread for the child's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Env = append(os.Environ(), supervisedEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		fmt.Fprintf(stderr, "shelf: start: %v; running unsupervised\n", err)
		return -1
	}
	w.Close()
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	reported, _ := io.ReadAll(r) // until the child exits
	r.Close()
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Killed (OOM killer, SIGKILL): as a shell reports it; retried.
			return 128 + int(ws.Signal())
		}
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintf(stderr, "shelf: wait: %v\n", err)
		return jobs.ExitRetryable
	}
	if want, perr := strconv.Atoi(string(reported)); perr == nil {
		return want
	}
	if code != jobs.ExitOK {
		fmt.Fprintf(stderr, "shelf: the %s process crashed (exit %d without a result: a Go panic or fatal error, see above); exiting %d so that the scheduler retries\n",
			args[0], code, jobs.ExitRetryable)
		return jobs.ExitRetryable
	}
	return code
}

// reportExit tells the supervisor which exit code the command decided on.
func reportExit(code int) {
	if os.Getenv(supervisedEnv) != "3" {
		return
	}
	f := os.NewFile(3, "shelf-exit")
	if f == nil {
		return
	}
	fmt.Fprint(f, code)
	f.Close()
}
