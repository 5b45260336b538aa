package events

import (
	"context"
	"errors"
	"io"
	"testing"
)

func TestRangeReaderAt(t *testing.T) {
	data := []byte("0123456789")
	for _, bk := range bucketKinds {
		b := bk.open(t, map[string][]byte{"k": data})
		r := newRangeReaderAt(context.Background(), b, "k", int64(len(data)))
		cases := []struct {
			name    string
			off     int64
			n       int
			want    string
			wantErr error
		}{
			{"start", 0, 4, "0123", nil},
			{"middle", 3, 3, "345", nil},
			{"whole", 0, 10, "0123456789", nil},
			{"past end", 8, 4, "89", io.EOF},
			{"at end", 10, 1, "", io.EOF},
			{"empty", 2, 0, "", nil},
		}
		for _, c := range cases {
			t.Run(bk.name+"/"+c.name, func(t *testing.T) {
				p := make([]byte, c.n)
				n, err := r.ReadAt(p, c.off)
				if string(p[:n]) != c.want || !errors.Is(err, c.wantErr) {
					t.Errorf("ReadAt(%d, %d) = %q, %v; want %q, %v", c.n, c.off, p[:n], err, c.want, c.wantErr)
				}
			})
		}
		if end, err := r.Seek(0, io.SeekEnd); end != 10 || err != nil || r.Size() != 10 {
			t.Errorf("Seek end = %d, %v", end, err)
		}
		if r.ioErr() != nil {
			t.Errorf("ioErr = %v after clean reads", r.ioErr())
		}
		// A listed size larger than the object is a storage inconsistency, not bad Parquet.
		lying := newRangeReaderAt(context.Background(), b, "k", 20)
		if _, err := lying.ReadAt(make([]byte, 5), 8); err == nil || lying.ioErr() == nil {
			t.Errorf("short object: err = %v, ioErr = %v", err, lying.ioErr())
		}
		missing := newRangeReaderAt(context.Background(), b, "nope", 5)
		if _, err := missing.ReadAt(make([]byte, 1), 0); err == nil || missing.ioErr() == nil {
			t.Errorf("missing object: err = %v", err)
		}
	}
}
