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
)

// TestFuzzSeeds rewrites testdata/fuzz/FuzzRead from the malformed corpus under -update.
func TestFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("only with -update")
	}
	dir := filepath.Join(testdataDir, "fuzz", "FuzzRead")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range malformedCases {
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(malformedFile(t, c))))
		if err := os.WriteFile(filepath.Join(dir, c.name), []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRead: any bytes as a one-file bucket must neither panic nor unbalance
// the accounting; errors other than *DataError would be storage errors, which
// an in-memory bucket does not produce.
func FuzzRead(f *testing.F) {
	f.Add([]byte("PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := memBucket(t, map[string][]byte{"f.parquet": data})
		opts := Options{Config: testConfig(), Start: winStart, End: winEnd, Now: wallClock, Rejects: &rejectLog{}}
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

// FuzzParseTS: the cached string-ts path agrees with time.ParseInLocation.
func FuzzParseTS(f *testing.F) {
	for _, s := range []string{"2010-12-01 08:26:00", "2011-03-27 01:30:00", "1969-12-31 23:59:59", "", "2024-13-01 00:00:00", "9999-12-31 23:59:59"} {
		f.Add(s, s)
	}
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
