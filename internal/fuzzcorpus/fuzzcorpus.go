// Package fuzzcorpus feeds the committed corpora under the repository's
// testdata/fuzz/<FuzzTarget>/ to fuzz targets in any package. `go test` by
// itself reads only the package's own testdata/fuzz; the corpora live at
// the top so that the malformed-input seeds and every crasher found are in
// one place (testdata/fuzz/README.md).
package fuzzcorpus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Add adds every entry of dir/<f's target name> as a seed. Entries use Go's
// corpus encoding ("go test fuzz v1", one value a line); only []byte and
// string values are supported. A missing folder adds nothing.
func Add(f *testing.F, dir string) {
	f.Helper()
	dir = filepath.Join(dir, f.Name())
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		vals, err := Parse(b)
		if err != nil {
			f.Fatalf("corpus %s: %v", filepath.Join(dir, e.Name()), err)
		}
		f.Add(vals...)
	}
}

// Parse decodes one corpus entry.
func Parse(b []byte) ([]any, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	if !sc.Scan() || sc.Text() != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus entry: want first line %q", "go test fuzz v1")
	}
	var vals []any
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		typ, lit, ok := strings.Cut(line, "(")
		if !ok || !strings.HasSuffix(lit, ")") {
			return nil, fmt.Errorf("line %q: want type(literal)", line)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			return nil, fmt.Errorf("line %q: %v", line, err)
		}
		switch typ {
		case "[]byte":
			vals = append(vals, []byte(s))
		case "string":
			vals = append(vals, s)
		default:
			return nil, fmt.Errorf("line %q: unsupported type %s", line, typ)
		}
	}
	return vals, sc.Err()
}
