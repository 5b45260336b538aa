package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/shelfml/shelf/configs"
	"github.com/shelfml/shelf/internal/fuzzcorpus"
)

// TestFuzzSeeds rewrites testdata/fuzz/FuzzRead and FuzzReadCatalog from
// the malformed corpus under -update (found crashers live beside them).
func TestFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("only with -update")
	}
	for _, c := range malformedCases {
		dir := filepath.Join(testdataDir, "fuzz", "FuzzRead")
		if c.catalog {
			dir = filepath.Join(testdataDir, "fuzz", "FuzzReadCatalog")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(malformedFile(t, c))))
		if err := os.WriteFile(filepath.Join(dir, c.name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzLimits keep a fuzzed file from making each run allocate a gigabyte.
var fuzzLimits = configs.LimitsConfig{MaxColumnChunkBytes: 64 << 20, MaxRowGroupBytes: 256 << 20}

// FuzzRead: any bytes as a one-file bucket must neither panic nor unbalance
// the accounting; errors other than *DataError would be storage errors, which
// an in-memory bucket does not produce.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PAR1"))
	fuzzcorpus.Add(f, filepath.Join(testdataDir, "fuzz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := memBucket(t, map[string][]byte{"f.parquet": data})
		cfg := testConfig()
		cfg.Limits = fuzzLimits
		opts := Options{Config: cfg, Start: winStart, End: winEnd, Now: wallClock, Rejects: &rejectLog{}}
		in, acct, err := Read(context.Background(), b, opts)
		if !acct.Balanced() {
			t.Fatalf("not balanced: %+v", acct)
		}
		if err == nil && int64(len(in.Events)) != acct.Used {
			t.Fatalf("%d events, %d used", len(in.Events), acct.Used)
		}
		if err != nil {
			var de *DataError
			if !asDataError(err, &de) {
				t.Fatalf("non-data error from an in-memory bucket: %v", err)
			}
		}
	})
}

// FuzzReadCatalog: any bytes as the catalog file must neither panic nor
// unbalance the accounting, and a catalog read without error is consistent.
func FuzzReadCatalog(f *testing.F) {
	f.Add([]byte("PAR1"))
	fuzzcorpus.Add(f, filepath.Join(testdataDir, "fuzz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const key = "catalog/items.parquet"
		opts := catalogTestOptions(key, fuzzLimits)
		opts.Rejects = &rejectLog{}
		cat, acct, err := ReadCatalog(context.Background(), memBucket(t, map[string][]byte{key: data}), opts)
		if !acct.Balanced() {
			t.Fatalf("not balanced: %+v", acct)
		}
		if err != nil {
			var de *DataError
			if !asDataError(err, &de) || de.Input != "catalog" {
				t.Fatalf("not a catalog data error from an in-memory bucket: %v", err)
			}
			return
		}
		n := cat.Items.Len()
		if len(cat.Category) != n || len(cat.Price) != n || len(cat.Listed) != n {
			t.Fatalf("%d items, %d categories, %d prices, %d listed", n, len(cat.Category), len(cat.Price), len(cat.Listed))
		}
		var listed int64
		for i := range n {
			if cat.Listed[i] {
				listed++
			}
			if c := cat.Category[i]; c < -1 || int(c) >= cat.Categories.Len() || (c >= 0 && !cat.Listed[i]) {
				t.Fatalf("item %d: category %d of %d", i, c, cat.Categories.Len())
			}
		}
		if listed != acct.Used {
			t.Fatalf("%d items listed, %d rows used", listed, acct.Used)
		}
	})
}

// FuzzParseTS: the cached string-ts path agrees with time.ParseInLocation.
func FuzzParseTS(f *testing.F) {
	for _, s := range []string{"2010-12-01 08:26:00", "2011-03-27 01:30:00", "1969-12-31 23:59:59", "", "2024-13-01 00:00:00", "9999-12-31 23:59:59"} {
		f.Add(s, s)
	}
	fuzzcorpus.Add(f, filepath.Join(testdataDir, "fuzz"))
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		f.Fatal(err)
	}
	const layout = "2006-01-02 15:04:05"
	f.Fuzz(func(t *testing.T, a, b string) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		sb := array.NewStringBuilder(mem)
		sb.AppendValues([]string{a, b, a}, nil)
		arr := sb.NewArray()
		sb.Release()
		defer arr.Release()
		col := &tsColumn{layout: layout, loc: london}
		get, err := col.bind(arr)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range []string{a, b, a} {
			sec, reason, _ := get(i)
			want, werr := time.ParseInLocation(layout, s, london)
			if (werr == nil) != (reason == "") || (werr == nil && want.Unix() != sec) {
				t.Fatalf("%q: got %d %q, want %v %v", s, sec, reason, want, werr)
			}
		}
	})
}

func asDataError(err error, de **DataError) bool { return errors.As(err, de) }
