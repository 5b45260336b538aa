package blobs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"gocloud.dev/blob"
)

// ErrOpen marks a bucket URL that cannot be opened: no scheme, a scheme no
// driver serves, a malformed or missing parameter, missing credentials, a
// file:// directory that does not exist. Retrying does not fix it.
var ErrOpen = errors.New("cannot open bucket")

// Open opens the bucket at a gocloud.dev blob URL for reading and writing.
// The error names the URL with secrets removed (see Redact) and wraps
// ErrOpen unless the failure is transient. file:// URLs default to
// metadata=skip: no ".attrs" sidecar files beside the objects, where
// directory readers (Spark, DuckDB, pyarrow) would trip on them.
func Open(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	return open(ctx, bucketURL, false)
}

// OpenOutput is Open for an output location: a file:// directory is
// created when missing (create_dir=true), as object stores need no folder.
func OpenOutput(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	return open(ctx, bucketURL, true)
}

func open(ctx context.Context, bucketURL string, create bool) (*blob.Bucket, error) {
	red := Redact(bucketURL)
	u, perr := url.Parse(bucketURL)
	switch {
	case bucketURL == "":
		return nil, fmt.Errorf("open bucket: empty URL (want scheme://…, e.g. file:///data/events or s3://bucket?region=…): %w", ErrOpen)
	case perr != nil:
		return nil, fmt.Errorf("open bucket %s: %v: %w", red, perr, ErrOpen)
	case u.Scheme == "":
		return nil, fmt.Errorf("open bucket %s: no scheme (want file://, mem://, s3://, gs:// or azblob://; a local path is file:///abs/path): %w", red, ErrOpen)
	case u.Scheme == "file":
		q := u.Query()
		if !q.Has("metadata") {
			q.Set("metadata", "skip")
		}
		if create && !q.Has("create_dir") {
			q.Set("create_dir", "true")
		}
		u.RawQuery = q.Encode()
		bucketURL = u.String()
	}
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		err = &redactedError{err: err, raw: bucketURL, red: red}
		if !IsRetryable(err) {
			err = fmt.Errorf("%w: %w", ErrOpen, err)
		}
		if strings.Contains(err.Error(), "no driver registered") {
			return nil, fmt.Errorf("open bucket %s (no driver for scheme %q: want file, mem, s3, gs or azblob): %w", red, u.Scheme, err)
		}
		return nil, fmt.Errorf("open bucket %s: %w", red, err)
	}
	return b, nil
}

// ObjectURL is a URL a person can paste for key in the bucket at bucketURL:
// the bucket URL without its query (driver options, redacted secrets) with
// the key appended as a path: file:///data/out/models/x/, s3://bucket/models/x/.
func ObjectURL(bucketURL, key string) string {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme == "" {
		return Redact(bucketURL) + "#" + key
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	base := strings.TrimSuffix(u.String(), "/")
	if u.Scheme == "mem" {
		base = "mem://" + u.Host
	}
	return base + "/" + key
}

// redactedError keeps the original error for errors.Is/As but replaces the
// raw URL in its message, because drivers quote the URL they were given.
type redactedError struct {
	err      error
	raw, red string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	if e.raw != "" && e.raw != e.red {
		msg = strings.ReplaceAll(msg, e.raw, e.red)
		if u, perr := url.Parse(e.raw); perr == nil {
			if ru, rerr := url.Parse(e.red); rerr == nil && u.RawQuery != "" {
				msg = strings.ReplaceAll(msg, u.RawQuery, ru.RawQuery)
			}
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, u.User.String(), redacted)
				msg = strings.ReplaceAll(msg, url.QueryEscape(pw), redacted)
				msg = strings.ReplaceAll(msg, pw, redacted)
			}
		}
	}
	return msg
}

// RedactError returns err with every trace of rawURL's credentials (user
// info, secret-looking query values) replaced in its message; errors.Is and
// errors.As still see the original. Use it for errors of HTTP clients that
// quote the URL they were given.
func RedactError(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err, raw: rawURL, red: Redact(rawURL)}
}

func (e *redactedError) Unwrap() error { return e.err }

const redacted = "REDACTED"

// secretParam matches query parameter names that carry credentials
// (Azure SAS "sig", "sas_token", "access_key", "secret", "password", ...).
var secretParam = regexp.MustCompile(`(?i)(key|secret|token|passw|sig|credential|auth)`)

// secretValue matches values that look like keys whatever their parameter is
// called: long runs of base64/hex characters.
var secretValue = regexp.MustCompile(`^[A-Za-z0-9+/=_\-]{32,}$`)

// Redact returns the URL safe to log: user info is dropped and query values
// that are named like secrets or look like keys are replaced by REDACTED.
// Unparseable input keeps only its scheme and host-looking prefix.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Keep what is before any userinfo or query; never echo the rest.
		s := rawURL
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			scheme := ""
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				scheme = s[:j+3]
			}
			s = scheme + redacted + "@" + s[i+1:]
		}
		return s
	}
	if u.User == nil && u.RawQuery == "" && u.Fragment == "" {
		return rawURL // url.URL.String would turn "mem://" into "mem:"
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			for i, v := range vs {
				if secretParam.MatchString(k) || secretValue.MatchString(v) {
					vs[i] = redacted
				}
			}
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	out := u.String()
	if sch := u.Scheme + "://"; strings.HasPrefix(rawURL, sch) && !strings.HasPrefix(out, sch) {
		out = sch + strings.TrimPrefix(out, u.Scheme+":") // empty host, as in mem://?nomd5
	}
	return out
}

// SplitObjectURL splits the URL of one object (or of a prefix, ending in
// "/") into its bucket URL and key: file:///data/x/forget.txt → file:///data/x
// and forget.txt; s3://bucket/a/b.parquet?region=r → s3://bucket?region=r and
// a/b.parquet. For file:// the last path segment is the key (the bucket is
// its directory).
func SplitObjectURL(raw string) (bucketURL, key string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("object URL %s: want scheme://bucket/key (file:///dir/file, s3://bucket/key?…): %w", Redact(raw), ErrOpen)
	}
	if u.Scheme == "file" {
		dir, file := path.Split(u.Path)
		if strings.HasSuffix(u.Path, "/") {
			dir, file = u.Path, ""
		}
		if dir == "" {
			dir = "/"
		}
		b := *u
		b.Path = strings.TrimSuffix(dir, "/")
		if b.Path == "" {
			b.Path = "/"
		}
		return b.String(), file, nil
	}
	key = strings.TrimPrefix(u.Path, "/")
	if key == "" && !strings.HasSuffix(u.Path, "/") {
		return "", "", fmt.Errorf("object URL %s: no key after the bucket: %w", Redact(raw), ErrOpen)
	}
	b := *u
	b.Path = ""
	return b.String(), key, nil
}
