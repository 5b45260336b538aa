package blobs_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
)

// BenchmarkReaderAt measures ReaderAt throughput for the two access patterns
// of a Parquet reader: sequential small reads (page headers, served by the
// read-ahead buffer) and large column-chunk reads (straight range reads).
func BenchmarkReaderAt(b *testing.B) {
	const size = 8 << 20
	data := randBytes(11, size)
	stores := []struct {
		name string
		url  func(testing.TB) string
	}{
		{"file", func(t testing.TB) string { return "file://" + filepath.ToSlash(t.TempDir()) }},
		{"s3", blobstest.StartS3},
	}
	patterns := []struct {
		name          string
		chunk, bufSiz int
	}{
		{"seq4KiB-buf1MiB", 4 << 10, 1 << 20},
		{"seq4KiB-nobuf", 4 << 10, 0},
		{"seq1MiB", 1 << 20, 1 << 20},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			ctx := context.Background()
			bkt, err := blobs.Open(ctx, st.url(b))
			if err != nil {
				b.Fatal(err)
			}
			defer bkt.Close()
			if err := blobs.WriteFile(ctx, bkt, "bench", data, blobs.DefaultPolicy()); err != nil {
				b.Fatal(err)
			}
			for _, p := range patterns {
				b.Run(p.name, func(b *testing.B) {
					r, err := blobs.NewReaderAt(ctx, bkt, "bench", p.bufSiz)
					if err != nil {
						b.Fatal(err)
					}
					buf := make([]byte, p.chunk)
					// Without a buffer every 4 KiB is a request: read 1 MiB only.
					span := int64(size)
					if p.bufSiz == 0 && p.chunk < 1<<20 {
						span = 1 << 20
					}
					b.SetBytes(span)
					b.ResetTimer()
					for range b.N {
						for off := int64(0); off < span; off += int64(p.chunk) {
							if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
								b.Fatal(err)
							}
						}
					}
					b.ReportMetric(float64(r.Requests())/float64(b.N), "requests/op")
				})
			}
		})
	}
}

func ExampleRedact() {
	fmt.Println(blobs.Redact("s3://AKIA:secret@bucket/events?region=eu-west-1&sig=abc"))
	// Output: s3://REDACTED@bucket/events?region=eu-west-1&sig=REDACTED
}
