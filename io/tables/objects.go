package tables

import (
	"context"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
)

// putObject writes a whole object with retries and its MD5, so a store that
// checks it rejects a truncated upload.
func putObject(ctx context.Context, b *blob.Bucket, key string, data []byte) error {
	return blobs.WriteFile(ctx, b, key, data, blobs.DefaultPolicy())
}
