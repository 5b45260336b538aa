package tables

import (
	"context"
	"crypto/md5"
	"fmt"

	"gocloud.dev/blob"
)

// putObject writes a whole object with its MD5 so a store that checks it
// rejects a truncated upload.
func putObject(ctx context.Context, b *blob.Bucket, key string, data []byte) error {
	sum := md5.Sum(data)
	if err := b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentMD5: sum[:]}); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
