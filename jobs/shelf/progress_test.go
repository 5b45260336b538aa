package main

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestProgressOnNotATerminal: a buffer or a pipe (a pod's stderr, `2>file`)
// gets progress lines, and logs go straight to it.
func TestProgressOnNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, out := range []io.Writer{&bytes.Buffer{}, w} {
		p, logw := progressOn(out, false)
		if p.Terminal != nil || logw != out {
			t.Errorf("%T: progress %+v, log writer %T: want lines, logs unchanged", out, p, logw)
		}
	}
}
