package blobs

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"gocloud.dev/blob"
)

// Open opens the bucket at a gocloud.dev blob URL. The error names the URL
// with secrets removed (see Redact) and hints at a missing driver import.
func Open(ctx context.Context, bucketURL string) (*blob.Bucket, error) {
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		red := Redact(bucketURL)
		err = &redactedError{err: err, raw: bucketURL, red: red}
		if strings.Contains(err.Error(), "no driver registered") {
			return nil, fmt.Errorf("open bucket %s (is the driver for this scheme imported in main?): %w", red, err)
		}
		return nil, fmt.Errorf("open bucket %s: %w", red, err)
	}
	return b, nil
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
		if u, perr := url.Parse(e.raw); perr == nil && u.RawQuery != "" {
			if ru, rerr := url.Parse(e.red); rerr == nil {
				msg = strings.ReplaceAll(msg, u.RawQuery, ru.RawQuery)
			}
		}
	}
	return msg
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
