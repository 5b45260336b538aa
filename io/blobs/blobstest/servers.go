package blobstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/memblob"   // mem://
	_ "gocloud.dev/blob/s3blob"    // s3://
)

// Bucket is the bucket name StartS3, StartFaultyS3 and StartGCS create.
const Bucket = "shelf-test"

// S3URL is the gocloud URL for bucket at an S3-compatible endpoint such as
// "http://127.0.0.1:9000" (path-style addressing, plain HTTP).
func S3URL(endpoint, bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1&disable_https=true", bucket, endpoint)
}

// StartS3 serves an in-memory S3 (gofakes3 + s3mem) over real HTTP on
// 127.0.0.1, creates Bucket, sets dummy AWS credentials in the environment
// and returns the bucket URL. The server stops when the test ends.
func StartS3(t testing.TB) string {
	t.Helper()
	srv := startS3Server(t)
	return S3URL(srv.URL, Bucket)
}

func startS3Server(t testing.TB) *httptest.Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		t.Fatalf("create s3 bucket %s: %v", Bucket, err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	setAWSEnv(t)
	return srv
}

// setAWSEnv gives the AWS SDK static dummy credentials and keeps it away from
// the developer's profile and the EC2 metadata endpoint.
func setAWSEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", "shelf-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "shelf-test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
}

// StartGCS serves fake-gcs-server over HTTP on 127.0.0.1, creates Bucket,
// points STORAGE_EMULATOR_HOST at it and returns "gs://shelf-test".
// gcsblob's default opener sees STORAGE_EMULATOR_HOST and uses an
// unauthenticated client against http://HOST/storage/v1/. The storage
// client sends its range reads to the XML API (http://HOST/BUCKET/OBJECT)
// on the same host; fake-gcs-server serves those only when its PublicHost
// is that host:port, otherwise it takes the Host header for a bucket name
// and answers 404. So the port is chosen before the server starts.
func StartGCS(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("start fake gcs: %v", err)
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme:     "http",
		Host:       "127.0.0.1",
		Port:       port,
		PublicHost: fmt.Sprintf("127.0.0.1:%d", port),
		Writer:     io.Discard,
	})
	if err != nil {
		t.Fatalf("start fake gcs: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	t.Setenv("STORAGE_EMULATOR_HOST", fmt.Sprintf("127.0.0.1:%d", port))
	t.Setenv("STORAGE_EMULATOR_HOST_GRPC", "")
	return "gs://" + Bucket
}

// AzuriteAccount and AzuriteKey are Azurite's well-known development
// credentials (public, documented by Microsoft; not a secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteURL returns the URL of a fresh container on the Azurite blob
// service at $SHELF_TEST_AZURITE (default http://127.0.0.1:10000), started by
// .ci/services/azurite.sh, e.g.
//
//	azblob://shelf-1a2b3c?protocol=http&domain=127.0.0.1:10000
//
// with AZURE_STORAGE_ACCOUNT/AZURE_STORAGE_KEY set to the development
// account. azureblob flips account and domain for a 127.0.0.1 domain into
// http://127.0.0.1:10000/devstoreaccount1. The container is deleted when the
// test ends. If Azurite is not reachable the test is skipped, loudly, or
// fails when CI=true.
func AzuriteURL(t testing.TB) string {
	t.Helper()
	endpoint := os.Getenv("SHELF_TEST_AZURITE")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:10000"
	}
	eu, err := url.Parse(endpoint)
	if err != nil || eu.Host == "" {
		t.Fatalf("SHELF_TEST_AZURITE=%q: want http://HOST:PORT", endpoint)
	}
	conn, err := net.DialTimeout("tcp", eu.Host, time.Second)
	if err != nil {
		msg := fmt.Sprintf("\n\n*** AZURITE NOT REACHABLE at %s (%v): Azure Blob conformance NOT TESTED ***\n"+
			"*** start it with: eval \"$(.ci/services/azurite.sh)\" ***\n", endpoint, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conn.Close()

	t.Setenv("AZURE_STORAGE_ACCOUNT", AzuriteAccount)
	t.Setenv("AZURE_STORAGE_KEY", AzuriteKey)
	for _, k := range []string{"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "AZURE_STORAGE_SAS_TOKEN"} {
		t.Setenv(k, "")
	}

	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("container name: %v", err)
	}
	name := "shelf-" + hex.EncodeToString(rnd[:])
	u := fmt.Sprintf("azblob://%s?protocol=%s&domain=%s", name, eu.Scheme, eu.Host)

	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatalf("open azurite container %s: %v", u, err)
	}
	var c *container.Client
	if !b.As(&c) {
		t.Fatalf("azureblob bucket is not a *container.Client")
	}
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("create azurite container %s: %v", name, err)
	}
	t.Cleanup(func() {
		if _, err := c.Delete(context.Background(), nil); err != nil {
			t.Logf("delete azurite container %s: %v", name, err)
		}
		b.Close()
	})
	return u
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (uint16, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// MinIOURL returns the URL of a fresh bucket on the MinIO server at
// $SHELF_TEST_MINIO (a real S3 implementation, started by
// .ci/services/minio.sh), with the AWS SDK's credentials set to MinIO's.
// The bucket is emptied and removed when the test ends. Without the server
// the test is skipped, loudly, or fails when CI=true.
func MinIOURL(t testing.TB) string {
	t.Helper()
	endpoint := MinIOEndpoint(t)
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("bucket name: %v", err)
	}
	name := "shelf-" + hex.EncodeToString(rnd[:])
	u := S3URL(endpoint, name)
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, u)
	if err != nil {
		t.Fatalf("open minio bucket %s: %v", u, err)
	}
	var c *s3.Client
	if !b.As(&c) {
		t.Fatal("s3blob bucket is not an *s3.Client")
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create minio bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		it := b.List(nil)
		for {
			o, err := it.Next(ctx)
			if err != nil {
				break
			}
			b.Delete(ctx, o.Key)
		}
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Logf("delete minio bucket %s: %v", name, err)
		}
		b.Close()
	})
	return u
}

// MinIOEndpoint is the MinIO server's address with the environment set for
// it (see MinIOURL).
func MinIOEndpoint(t testing.TB) string {
	t.Helper()
	endpoint := os.Getenv("SHELF_TEST_MINIO")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:9900"
	}
	eu, err := url.Parse(endpoint)
	if err != nil || eu.Host == "" {
		t.Fatalf("SHELF_TEST_MINIO=%q: want http://HOST:PORT", endpoint)
	}
	conn, err := net.DialTimeout("tcp", eu.Host, time.Second)
	if err != nil {
		msg := fmt.Sprintf("\n\n*** MINIO NOT REACHABLE at %s (%v): tests against a real S3 server NOT RUN ***\n"+
			"*** start it with: eval \"$(.ci/services/minio.sh)\" ***\n", endpoint, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conn.Close()
	setAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", cmpOr(os.Getenv("SHELF_TEST_MINIO_USER"), "shelfminio"))
	t.Setenv("AWS_SECRET_ACCESS_KEY", cmpOr(os.Getenv("SHELF_TEST_MINIO_PASSWORD"), "shelfminio-local-only"))
	return endpoint
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// StartFaultyMinIO is MinIOURL behind a FaultProxy.
func StartFaultyMinIO(t testing.TB, cfg FaultConfig) (string, *FaultProxy) {
	t.Helper()
	u := MinIOURL(t)
	target, err := url.Parse(MinIOEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	fp := NewFaultProxy(target, cfg)
	proxy := httptest.NewServer(fp)
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(u)
	q := pu.Query()
	q.Set("endpoint", proxy.URL)
	pu.RawQuery = q.Encode()
	return pu.String(), fp
}
