package tables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"gocloud.dev/blob"

	"github.com/shelfml/shelf/io/blobs"
)

// Verify checks what a reader would trust for model name and date: every
// version with a manifest has all its files with matching checksums, LATEST
// points to such a version, and a committed table partition has every part
// it lists with matching checksums. It returns the first broken promise.
func Verify(ctx context.Context, b *blob.Bucket, name, date string) error {
	ids, err := ListVersions(ctx, b, name)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m, err := OpenVersion(ctx, b, name, id)
		if err != nil {
			return fmt.Errorf("version %s has a manifest but: %w", id, err)
		}
		for _, f := range m.Files {
			if _, err := ReadVersionFile(ctx, b, m, f.Path); err != nil {
				return err
			}
		}
	}
	latest, err := Latest(ctx, b, name)
	if err != nil {
		return err
	}
	if latest != "" {
		if _, err := OpenVersion(ctx, b, name, latest); err != nil {
			return fmt.Errorf("LATEST points to %s: %w", latest, err)
		}
	}
	for _, table := range []string{Recommendations, PurchasePredictions} {
		s, err := ReadSuccess(ctx, b, table, date)
		if errors.Is(err, ErrNotCommitted) {
			continue
		}
		if err != nil {
			return err
		}
		var rows int64
		for i, p := range s.Parts {
			key := PartitionPrefix(table, date) + p.Path
			data, err := blobs.ReadFile(ctx, b, key, blobs.DefaultPolicy()) // retried, as every reader's read
			if err != nil {
				return fmt.Errorf("_SUCCESS lists %s: %w", key, err)
			}
			sum := sha256.Sum256(data)
			if int64(len(data)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
				return fmt.Errorf("_SUCCESS lists %s with another size or checksum", key)
			}
			info, err := ReadPartInfo(ctx, b, key)
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("%d/%d", i, len(s.Parts)); info.Version != s.ModelVersion || info.Part != want {
				return fmt.Errorf("_SUCCESS names version %s, but %s was written by %q as part %q", s.ModelVersion, key, info.Version, info.Part)
			}
			rows += info.Rows
		}
		if rows != s.Rows {
			return fmt.Errorf("_SUCCESS of %s says %d rows, its parts hold %d", PartitionPrefix(table, date), s.Rows, rows)
		}
		if s.ModelVersion != "" {
			if _, err := OpenVersion(ctx, b, name, s.ModelVersion); err != nil && !errors.Is(err, ErrNoVersion) {
				return fmt.Errorf("_SUCCESS of %s names %s: %w", PartitionPrefix(table, date), s.ModelVersion, err)
			} else if err != nil {
				return fmt.Errorf("_SUCCESS of %s names version %s, which has no manifest", PartitionPrefix(table, date), s.ModelVersion)
			}
		}
	}
	return nil
}
