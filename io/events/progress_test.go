package events

import (
	"context"
	"testing"
	"time"
)

// TestReadProgress checks the progress callback: files done never go back,
// and the last call reports every file and row.
func TestReadProgress(t *testing.T) {
	row := func(day int) []byte {
		return std(t, []any{"u1", "i1", time.Date(2024, 6, day, 12, 0, 0, 0, time.UTC), "view"})
	}
	files := map[string][]byte{
		"dt=2024-06-01/part-0.parquet": row(1),
		"dt=2024-06-02/part-0.parquet": row(2),
		"dt=2024-06-03/part-0.parquet": row(3),
	}
	type call struct {
		done, files int
		rows        int64
	}
	var calls []call
	opts := Options{Config: testConfig(), Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC),
		End: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), mem: checkedMem(t),
		Progress: func(done, files int, rows int64) { calls = append(calls, call{done, files, rows}) }}
	_, acct, err := Read(context.Background(), memBucket(t, files), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 {
		t.Fatalf("calls = %v, want one per batch and a last one", calls)
	}
	for i, c := range calls {
		if c.files != 3 || c.done > c.files || (i > 0 && (c.done < calls[i-1].done || c.rows < calls[i-1].rows)) {
			t.Fatalf("calls = %v", calls)
		}
	}
	if last := calls[len(calls)-1]; last != (call{3, 3, acct.Read}) || acct.Read != 3 {
		t.Fatalf("last call %v, rows read %d", last, acct.Read)
	}
}
