package blobs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/shelfml/shelf/io/blobs"
	"gocloud.dev/blob"
)

var blobWriterIfNotExist = blob.WriterOptions{IfNotExist: true}

func TestRedact(t *testing.T) {
	const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"
	cases := []struct {
		in, want string
	}{
		{"file:///data/events", "file:///data/events"},
		{"mem://", "mem://"},
		{"mem://?nomd5&secret=1", "mem://?nomd5=&secret=REDACTED"},
		{"s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000",
			"s3://bucket/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1"},
		{"s3://AKIAEXAMPLE:secretpart@bucket?region=us-east-1", "s3://REDACTED@bucket?region=us-east-1"},
		{"azblob://c?sig=abc123&sv=2020", "azblob://c?sig=REDACTED&sv=2020"},
		{"gs://b?access_key=x&token=y&x-password=z", "gs://b?access_key=REDACTED&token=REDACTED&x-password=REDACTED"},
		{"s3://b?whatever=" + key, "s3://b?whatever=REDACTED"},
		{"s3://b#frag", "s3://b"},
		{"::not a url?secret=x", "::not a url"},
		{"s3://user:pa ss@b%zz?secret=x", "s3://REDACTED@b%zz"},
	}
	for _, c := range cases {
		got := blobs.Redact(c.in)
		if got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, secret := range []string{"secretpart", key, "abc123", "pa ss", "secret=x"} {
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) leaks %q: %q", c.in, secret, got)
			}
		}
	}
}

func TestOpenErrorRedacted(t *testing.T) {
	cases := []struct{ name, url, hint string }{
		{"unknown scheme", "nosuch://bucket?sig=TOPSECRETSIG", "driver"},
		{"bad s3 param", "s3://u:TOPSECRETSIG@bucket?bogus=1&secret_key=TOPSECRETSIG", "bucket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := blobs.Open(context.Background(), c.url)
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), "TOPSECRETSIG") {
				t.Errorf("error leaks secret: %v", err)
			}
			if !strings.Contains(err.Error(), c.hint) || !strings.Contains(err.Error(), "REDACTED") {
				t.Errorf("error should name the redacted URL and %q: %v", c.hint, err)
			}
		})
	}
	b, err := blobs.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
