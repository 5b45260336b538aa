package tables

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Table names.
const (
	Recommendations     = "recommendations"
	PurchasePredictions = "purchase_predictions"
)

// PartitionPrefix is the folder of one table's partition for date D.
func PartitionPrefix(table, date string) string { return "tables/" + table + "/dt=" + date + "/" }

// PartKey is the object key of shard i of n.
func PartKey(table, date string, i, n int) string {
	return PartitionPrefix(table, date) + fmt.Sprintf("part-%05d-of-%05d.parquet", i, n)
}

// SuccessKey is the partition's completion marker.
func SuccessKey(table, date string) string { return PartitionPrefix(table, date) + "_SUCCESS" }

// Success is the content of _SUCCESS: what a reader may trust.
type Success struct {
	Table        string      `json:"table"`
	Date         string      `json:"date"`
	ModelVersion string      `json:"model_version"`
	Parts        []FileEntry `json:"parts"`
}

// InvalidatePartition removes _SUCCESS before any part is rewritten, so
// readers never trust a mix of old and new parts.
func InvalidatePartition(ctx context.Context, b *blob.Bucket, table, date string) error {
	key := SuccessKey(table, date)
	if err := b.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("invalidate %s: %w", key, err)
	}
	return nil
}

// CommitPartition checks that parts 0..n-1 all exist, removes parts of any
// other sharding left by earlier attempts, and writes _SUCCESS last.
func CommitPartition(ctx context.Context, b *blob.Bucket, table, date string, n int, modelVersion string) (*Success, error) {
	prefix := PartitionPrefix(table, date)
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		want[PartKey(table, date, i, n)] = true
	}
	it := b.List(&blob.ListOptions{Prefix: prefix})
	found := map[string]bool{}
	var stray []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		switch {
		case want[obj.Key]:
			found[obj.Key] = true
		case strings.HasSuffix(obj.Key, ".parquet"):
			stray = append(stray, obj.Key)
		}
	}
	var missing []string
	for k := range want {
		if !found[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("commit %s: %d of %d parts missing, first %s", prefix, len(missing), n, missing[0])
	}
	for _, k := range stray {
		if err := b.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return nil, fmt.Errorf("remove stray part %s: %w", k, err)
		}
	}
	s := &Success{Table: table, Date: date, ModelVersion: modelVersion}
	for i := 0; i < n; i++ {
		key := PartKey(table, date, i, n)
		data, err := b.ReadAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		sum := sha256.Sum256(data)
		s.Parts = append(s.Parts, FileEntry{Path: strings.TrimPrefix(key, prefix), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return s, putObject(ctx, b, SuccessKey(table, date), append(data, '\n'))
}

// ReadSuccess returns a committed partition's marker, or an error wrapping
// ErrNotCommitted when there is none.
func ReadSuccess(ctx context.Context, b *blob.Bucket, table, date string) (*Success, error) {
	data, err := b.ReadAll(ctx, SuccessKey(table, date))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%s: %w", PartitionPrefix(table, date), ErrNotCommitted)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SuccessKey(table, date), err)
	}
	var s Success
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", SuccessKey(table, date), err)
	}
	return &s, nil
}

// ErrNotCommitted means a partition has no _SUCCESS.
var ErrNotCommitted = errors.New("table partition not committed (no _SUCCESS)")
