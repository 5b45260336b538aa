package jobs

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shelfml/shelf/io/blobs"
	"github.com/shelfml/shelf/io/blobs/blobstest"
)

// TestNoSecretLeaks runs the pipeline on S3 with a canary credential and
// checks that it appears in no log line, no published object and no error.
func TestNoSecretLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three models")
	}
	ctx := context.Background()
	url := blobstest.StartS3(t)
	const canary = "CANARYsecretKEY0123456789abcdefXYZ"
	t.Setenv("AWS_SECRET_ACCESS_KEY", canary)
	t.Setenv("AWS_SESSION_TOKEN", canary+"token")
	cfg := testConfig(t)
	useBucket(t, &cfg, url)
	var logs bytes.Buffer
	r := &Runner{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		CodeVersion: "test", Now: time.Now}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), canary) {
		t.Fatal("a log line contains the secret")
	}
	out, err := blobs.Open(ctx, cfg.Output.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	objs, err := blobs.List(ctx, out, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) < 10 {
		t.Fatalf("only %d objects published", len(objs))
	}
	for _, o := range objs {
		b, err := out.ReadAll(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(canary)) {
			t.Fatalf("%s contains the secret", o.Key)
		}
	}
	if strings.Contains(res.VersionURI, canary) || strings.Contains(res.TablesURI, canary) {
		t.Fatal("the result contains the secret")
	}
	// Errors name the bucket, not the credentials.
	cfg.Events.URL = url + "&prefix=nothing-here/"
	_, err = (&Runner{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(&logs, nil)), CodeVersion: "test", Force: true, Now: time.Now}).Run(ctx)
	if err == nil || strings.Contains(err.Error(), canary) || strings.Contains(logs.String(), canary) {
		t.Fatalf("error path: %v", err)
	}
}

// TestPushgatewayCredentialsRedacted: a Pushgateway URL with a password
// (basic auth) never shows it in the error the command logs, whether the
// gateway is unreachable or answers an error.
func TestPushgatewayCredentialsRedacted(t *testing.T) {
	const canary = "CANARYpushPASSWORD42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused "+r.URL.String(), http.StatusBadGateway)
	}))
	defer srv.Close()
	for _, raw := range []string{
		"http://shelf:" + canary + "@127.0.0.1:1",
		strings.Replace(srv.URL, "http://", "http://shelf:"+canary+"@", 1),
		srv.URL + "?token=" + canary,
	} {
		err := PushMetrics(context.Background(), raw, "m", "run", nil, nil, time.Second, time.Now())
		if err == nil {
			t.Fatalf("push to %s succeeded", blobs.Redact(raw))
		}
		if strings.Contains(err.Error(), canary) {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}
