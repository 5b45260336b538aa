package blobs

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// WriteFile writes data to key, replacing any object there, retrying
// transient failures. ContentMD5 is set, so gocloud refuses to commit a write
// whose bytes differ, and GCS and Azure verify it server-side; the AWS SDK
// adds its own CRC checksum on S3 instead. A failed attempt is aborted, never
// committed half-written.
func WriteFile(ctx context.Context, b *blob.Bucket, key string, data []byte, p Policy) error {
	sum := md5.Sum(data)
	return RetryBytes(ctx, p, "write "+key, int64(len(data)), func(ctx context.Context) error {
		return writeAll(ctx, b, key, data, &blob.WriterOptions{ContentMD5: sum[:]})
	})
}

// errDriverPanic marks a recovered panic of a blob driver's writer; retryable.
var errDriverPanic = errors.New("blob driver panicked")

// writeAll is b.WriteAll that turns a driver panic into an error. gocloud
// v0.47's azureblob writer dereferences a nil pipe in Close whenever an
// upload fed through Write (always the case with ContentMD5) fails, e.g. on a
// 503 or a precondition; the upload itself has finished by then.
func writeAll(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write %s: %v: %w", key, r, errDriverPanic)
		}
	}()
	return b.WriteAll(ctx, key, data, opts)
}

// uploadIfNotExist creates key through the driver's one-shot Upload path,
// which keeps the store's precondition error intact on every driver (see
// writeAll for why the Write path cannot). No ContentMD5 here: gocloud
// routes MD5-checked writes through Write.
func uploadIfNotExist(ctx context.Context, b *blob.Bucket, key string, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("create %s: %v: %w", key, r, errDriverPanic)
		}
	}()
	return b.Upload(ctx, key, bytes.NewReader(data), &blob.WriterOptions{
		ContentType: "application/octet-stream",
		IfNotExist:  true,
	})
}

// createMu serialises conditional creations in this process (see WriteIfNotExists).
var createMu sync.Mutex

// WriteIfNotExists creates key with data only if no object exists there.
// created is false (and err nil) when the object already existed. Transient
// failures are retried; a retry that finds the object may be our own earlier
// attempt whose response was lost, so it compares contents before answering.
func WriteIfNotExists(ctx context.Context, b *blob.Bucket, key string, data []byte) (created bool, err error) {
	// gocloud's fileblob implements IfNotExist as stat-then-rename, which two
	// writers can both pass; serialising creations within the process makes
	// file:// locks exact for one process (across processes on one
	// filesystem it stays best-effort). S3, GCS and Azure check atomically.
	createMu.Lock()
	defer createMu.Unlock()
	err = Retry(ctx, DefaultPolicy(), "create "+key, func(ctx context.Context) error {
		werr := uploadIfNotExist(ctx, b, key, data)
		switch {
		case werr == nil:
			created = true
			return nil
		case gcerrors.Code(werr) == gcerrors.FailedPrecondition:
			// Our own earlier attempt may have landed with its response lost —
			// also inside a single attempt, where the SDK retries by itself —
			// so same bytes mean ours. (A lock body carries a random token, so
			// this cannot mistake someone else's lock for ours.)
			got, rerr := b.ReadAll(ctx, key)
			created = rerr == nil && bytes.Equal(got, data)
			return nil
		default:
			return werr
		}
	})
	return created, err
}

// ReadFile reads the whole object, retrying transient failures. It checks
// the byte count against the object's size and, where the store keeps one,
// its MD5, so a cut connection is an error (ErrTruncated/ErrCorrupt), never
// short data.
func ReadFile(ctx context.Context, b *blob.Bucket, key string, p Policy) ([]byte, error) {
	var out []byte
	parent := ctx
	err := Retry(ctx, p, "read "+key, func(ctx context.Context) error {
		attrs, err := b.Attributes(ctx, key)
		if err != nil {
			return err
		}
		// The body gets the deadline of its size, from the caller's context.
		return attempt(parent, p.Deadline(attrs.Size), func(ctx context.Context) error {
			return readBody(ctx, b, key, attrs, &out)
		})
	})
	return out, err
}

// readBody reads key whole into *out, checking it against attrs.
func readBody(ctx context.Context, b *blob.Bucket, key string, attrs *blob.Attributes, out *[]byte) error {
	{
		r, err := b.NewReader(ctx, key, nil)
		if err != nil {
			return err
		}
		defer r.Close()
		if r.Size() != attrs.Size {
			// Replaced between the two calls; read again.
			return fmt.Errorf("size changed from %d to %d during read: %w", attrs.Size, r.Size(), ErrCorrupt)
		}
		buf := make([]byte, attrs.Size)
		n, err := io.ReadFull(r, buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("got %d of %d bytes: %w", n, attrs.Size, ErrTruncated)
			}
			return err
		}
		// Anything beyond the announced size is also wrong.
		if extra, _ := r.Read(make([]byte, 1)); extra > 0 {
			return fmt.Errorf("object longer than its size %d: %w", attrs.Size, ErrCorrupt)
		}
		if len(attrs.MD5) > 0 {
			if sum := md5.Sum(buf); !bytes.Equal(sum[:], attrs.MD5) {
				return fmt.Errorf("md5 %x, stored %x: %w", sum, attrs.MD5, ErrCorrupt)
			}
		}
		*out = buf
		return nil
	}
}

// Exists reports whether an object exists at key.
func Exists(ctx context.Context, b *blob.Bucket, key string) (bool, error) {
	var ok bool
	err := Retry(ctx, DefaultPolicy(), "stat "+key, func(ctx context.Context) error {
		var err error
		ok, err = b.Exists(ctx, key)
		return err
	})
	return ok, err
}

// List returns every object under prefix, recursively (no delimiter), sorted
// by key. Directory placeholders are skipped.
func List(ctx context.Context, b *blob.Bucket, prefix string) ([]*blob.ListObject, error) {
	var out []*blob.ListObject
	p := DefaultPolicy()
	// No deadline for the whole listing (a large prefix has many pages):
	// each page gets one.
	err := Retry(ctx, Policy{Attempts: p.Attempts, Base: p.Base, Max: p.Max, Seed: p.Seed}, "list "+prefix, func(ctx context.Context) error {
		out = out[:0]
		it := b.List(&blob.ListOptions{Prefix: prefix})
		for {
			var o *blob.ListObject
			err := attempt(ctx, p.Deadline(0), func(ctx context.Context) error {
				var err error
				o, err = it.Next(ctx)
				return err
			})
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if o.IsDir {
				continue
			}
			out = append(out, o)
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// DeletePrefix deletes every object under prefix. Objects that vanish
// meanwhile are not an error. An empty prefix is refused: it would empty the
// bucket.
func DeletePrefix(ctx context.Context, b *blob.Bucket, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("delete prefix: refusing to delete the whole bucket (empty prefix)")
	}
	objs, err := List(ctx, b, prefix)
	if err != nil {
		return fmt.Errorf("delete prefix %s: %w", prefix, err)
	}
	for _, o := range objs {
		if err := deleteKey(ctx, b, o.Key); err != nil {
			return fmt.Errorf("delete prefix %s: %w", prefix, err)
		}
	}
	return nil
}

func deleteKey(ctx context.Context, b *blob.Bucket, key string) error {
	return Retry(ctx, DefaultPolicy(), "delete "+key, func(ctx context.Context) error {
		if err := b.Delete(ctx, key); err != nil && !IsNotFound(err) {
			return err
		}
		return nil
	})
}

// WritePointer writes a tiny text object naming something else, such as
// models/<name>/LATEST → version id. Call it only after the target's marker
// (manifest.json, _SUCCESS) is written: readers trust what it points to.
func WritePointer(ctx context.Context, b *blob.Bucket, key, value string) error {
	if value == "" || strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("write pointer %s: value %q must be one non-empty line", key, value)
	}
	return WriteFile(ctx, b, key, []byte(value+"\n"), DefaultPolicy())
}

// ReadPointer reads a pointer written by WritePointer. A missing pointer is
// an error for which IsNotFound is true.
func ReadPointer(ctx context.Context, b *blob.Bucket, key string) (string, error) {
	data, err := ReadFile(ctx, b, key, DefaultPolicy())
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" || strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("read pointer %s: malformed content %q", key, data)
	}
	return v, nil
}

// Copy copies src to dst inside the bucket (server-side where the store
// supports it) and returns the copy's size and sha256, read back in a
// stream: what readers will find at dst, with memory independent of size.
// Transient failures are retried.
func Copy(ctx context.Context, b *blob.Bucket, dst, src string) (size int64, sha string, err error) {
	p := DefaultPolicy()
	parent := ctx
	err = Retry(ctx, p, "copy "+src+" to "+dst, func(ctx context.Context) error {
		srcAttrs, err := b.Attributes(ctx, src)
		if err != nil {
			return err
		}
		return attempt(parent, 2*p.Deadline(srcAttrs.Size), func(ctx context.Context) error { // copy, then read back
			if err := b.Copy(ctx, dst, src, nil); err != nil {
				return err
			}
			r, err := b.NewReader(ctx, dst, nil)
			if err != nil {
				return err
			}
			defer r.Close()
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return err
			}
			if n != srcAttrs.Size {
				return fmt.Errorf("copy holds %d bytes, %s has %d: %w", n, src, srcAttrs.Size, ErrTruncated)
			}
			size, sha = n, hex.EncodeToString(h.Sum(nil))
			return nil
		})
	})
	return size, sha, err
}

// Attributes returns key's attributes, retrying transient failures.
func Attributes(ctx context.Context, b *blob.Bucket, key string) (*blob.Attributes, error) {
	var a *blob.Attributes
	err := Retry(ctx, DefaultPolicy(), "stat "+key, func(ctx context.Context) error {
		var err error
		a, err = b.Attributes(ctx, key)
		return err
	})
	return a, err
}

// SHA256 streams key and returns the hex SHA-256 of its bytes, checking the
// count against its size; transient failures are retried.
func SHA256(ctx context.Context, b *blob.Bucket, key string) (string, error) {
	var sum string
	p := DefaultPolicy()
	parent := ctx
	err := Retry(ctx, p, "hash "+key, func(ctx context.Context) error {
		a, err := b.Attributes(ctx, key)
		if err != nil {
			return err
		}
		return attempt(parent, p.Deadline(a.Size), func(ctx context.Context) error {
			r, err := b.NewReader(ctx, key, nil)
			if err != nil {
				return err
			}
			defer r.Close()
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return err
			}
			if n != r.Size() {
				return fmt.Errorf("got %d of %d bytes: %w", n, r.Size(), ErrTruncated)
			}
			sum = hex.EncodeToString(h.Sum(nil))
			return nil
		})
	})
	return sum, err
}
